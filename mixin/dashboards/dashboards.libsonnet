// Placeholder until the dashboards move into the mixin (mixin/dashboards/ belongs to them):
// no dashboards, so scripts/mixin renders none.
{ grafanaDashboards+: {} }
