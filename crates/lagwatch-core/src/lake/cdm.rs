//! The CDM `model.json` Synapse Link writes next to its CSV files.
//!
//! Why it matters: the CSV files have no header row, so the only way to know which field is
//! the sentinel key is the attribute order of the table's entity in `model.json` (fact sheet
//! §5.2, §5.4). Only what lagwatch needs is read: entity names and attribute names, in order.

use serde::Deserialize;

use super::LakeError;

#[derive(Deserialize)]
struct Model {
    entities: Vec<Entity>,
}

#[derive(Deserialize)]
struct Entity {
    name: String,
    #[serde(default)]
    attributes: Vec<Attribute>,
}

#[derive(Deserialize)]
struct Attribute {
    name: String,
    #[serde(default, rename = "dataType")]
    data_type: Option<String>,
}

/// One column of a table, in CSV order: its name and CDM data type (`string`, `int64`,
/// `boolean`, `dateTime`, `dateTimeOffset`, `guid`, …; empty when the manifest gives none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub data_type: String,
}

/// The column names of `table`, in CSV order, from the `model.json` at `path`; `None` if the
/// manifest does not list the table (Synapse Link lists every exported table, so that means
/// the table is not exported by this profile).
///
/// # Errors
/// [`LakeError::Malformed`] if the bytes are not a CDM manifest or the table has no attributes.
pub fn columns(bytes: &[u8], path: &str, table: &str) -> Result<Option<Vec<String>>, LakeError> {
    Ok(typed_columns(bytes, path, table)?.map(|c| c.into_iter().map(|c| c.name).collect()))
}

/// As [`columns`], with each column's CDM data type: what a reader needs to turn a CSV field
/// into comparable text (`True` is a boolean, `2026-11-02T10:15:07.0000000Z` a datetime).
///
/// # Errors
/// As [`columns`].
pub fn typed_columns(
    bytes: &[u8],
    path: &str,
    table: &str,
) -> Result<Option<Vec<Column>>, LakeError> {
    let model: Model = serde_json::from_slice(bytes).map_err(|e| LakeError::Malformed {
        path: path.to_string(),
        reason: format!("not a CDM model.json ({e})"),
    })?;
    let Some(entity) = model
        .entities
        .into_iter()
        .find(|e| e.name.eq_ignore_ascii_case(table))
    else {
        return Ok(None);
    };
    if entity.attributes.is_empty() {
        return Err(LakeError::Malformed {
            path: path.to_string(),
            reason: format!("entity {table} lists no attributes, so its CSV cannot be read"),
        });
    }
    Ok(Some(
        entity
            .attributes
            .into_iter()
            .map(|a| Column {
                name: a.name,
                data_type: a.data_type.unwrap_or_default(),
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_come_in_manifest_order() {
        let m = br#"{"name":"cdm","version":"1.0","entities":[
            {"$type":"LocalEntity","name":"contact","attributes":[{"name":"Id","dataType":"guid"}]},
            {"$type":"LocalEntity","name":"account","attributes":[
                {"name":"Id","dataType":"guid"},{"name":"SinkCreatedOn","dataType":"dateTime"},
                {"name":"name","dataType":"string"}],"partitions":[]}]}"#;
        assert_eq!(
            columns(m, "model.json", "account").unwrap().unwrap(),
            ["Id", "SinkCreatedOn", "name"]
        );
        assert_eq!(columns(m, "model.json", "lead").unwrap(), None);
        let typed = typed_columns(m, "model.json", "account").unwrap().unwrap();
        assert_eq!(
            (typed[1].name.as_str(), typed[1].data_type.as_str()),
            ("SinkCreatedOn", "dateTime")
        );
    }

    #[test]
    fn garbage_is_a_typed_error() {
        for bad in [
            &b"<html>"[..],
            br#"{"entities":"x"}"#,
            br#"{"entities":[{"name":"account","attributes":[]}]}"#,
        ] {
            let e = columns(bad, "f/model.json", "account").unwrap_err();
            assert!(matches!(e, LakeError::Malformed { .. }), "{e}");
            assert!(e.to_string().starts_with("f/model.json: "), "{e}");
        }
    }
}
