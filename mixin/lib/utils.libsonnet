// Helpers shared by the alert and recording rule files.
{
  // A paragraph written over several lines, as one line: the lines joined by single spaces,
  // as YAML's folded scalars (`>-`) do. Descriptions are written this way so that the jsonnet
  // stays readable while the rendered annotation is the one-line text Alertmanager shows.
  fold(text):: std.join(' ', std.split(std.stripChars(text, '\n'), '\n')),
}
