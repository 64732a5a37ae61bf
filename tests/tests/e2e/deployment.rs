//! The deployment template (template.yaml) against what production needs
//! to see: DynamoDB publishes throttle events per index, so an index
//! without its own alarms throttles silently (the table's alarms do not
//! count an index's throttles); a route the router serves but API Gateway
//! does not route is unreachable once deployed, and one missing from the
//! local router (`cargo lambda watch`, Cargo.toml) is never tried there.

use std::collections::BTreeMap;

use serde_json::Value;

use cashback_test_support::moto::template_resources;

/// The index names of the table's global secondary indexes.
fn index_names(resources: &Value) -> Vec<String> {
    resources["CashbackTable"]["Properties"]["GlobalSecondaryIndexes"]
        .as_array()
        .expect("the table has global secondary indexes")
        .iter()
        .filter_map(|index| index["IndexName"].as_str().map(str::to_string))
        .collect()
}

/// True if some alarm watches `metric` with the dimension
/// GlobalSecondaryIndexName = `index`.
fn alarmed(resources: &Value, metric: &str, index: &str) -> bool {
    let Some(resources) = resources.as_object() else {
        return false;
    };
    resources.values().any(|resource| {
        let properties = &resource["Properties"];
        resource["Type"] == "AWS::CloudWatch::Alarm"
            && properties["Namespace"] == "AWS/DynamoDB"
            && properties["MetricName"] == metric
            && properties["Dimensions"]
                .as_array()
                .is_some_and(|dimensions| {
                    dimensions.iter().any(|dimension| {
                        dimension["Name"] == "GlobalSecondaryIndexName"
                            && dimension["Value"] == index
                    })
                })
    })
}

#[test]
fn every_index_has_its_own_read_and_write_throttle_alarms() {
    let resources = template_resources();
    let indexes = index_names(&resources);
    assert!(indexes.len() >= 4, "indexes read: {indexes:?}");
    let missing: Vec<String> = indexes
        .iter()
        .flat_map(|index| {
            ["ReadThrottleEvents", "WriteThrottleEvents"]
                .into_iter()
                .filter(|metric| !alarmed(&resources, metric, index))
                .map(move |metric| format!("{metric} on {index}"))
        })
        .collect();
    assert!(missing.is_empty(), "no alarm for: {missing:?}");
}

/// Each HTTP route API Gateway sends to a function: path to the function's
/// binary.
fn template_routes(resources: &Value) -> BTreeMap<String, String> {
    let mut routes = BTreeMap::new();
    for resource in resources.as_object().into_iter().flat_map(|r| r.values()) {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_default();
        let events = resource["Properties"]["Events"].as_object();
        for event in events.into_iter().flat_map(|e| e.values()) {
            if event["Type"] == "HttpApi" {
                if let Some(path) = event["Properties"]["Path"].as_str() {
                    routes.insert(path.to_string(), binary.to_string());
                }
            }
        }
    }
    routes
}

/// `[workspace.metadata.lambda.watch.router]` of the workspace's
/// Cargo.toml: path to function, one `"path" = "function"` a line.
fn local_routes() -> BTreeMap<String, String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let text = std::fs::read_to_string(manifest).expect("the workspace's Cargo.toml");
    text.lines()
        .skip_while(|line| line.trim() != "[workspace.metadata.lambda.watch.router]")
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| {
            let (path, function) = line.split_once('=')?;
            let unquote = |s: &str| s.trim().trim_matches('"').to_string();
            Some((unquote(path), unquote(function)))
        })
        .filter(|(path, _)| path.starts_with('/'))
        .collect()
}

#[test]
fn api_gateway_and_the_local_router_route_the_same_paths_to_the_same_functions() {
    let deployed = template_routes(&template_resources());
    let local = local_routes();
    assert!(
        deployed.len() > 20 && local.len() > 20,
        "{deployed:?} {local:?}"
    );
    let differ: Vec<String> = deployed
        .keys()
        .chain(local.keys())
        .filter(|path| deployed.get(*path) != local.get(*path))
        .map(|path| {
            format!(
                "{path}: template {:?}, Cargo.toml {:?}",
                deployed.get(path),
                local.get(path)
            )
        })
        .collect();
    assert!(differ.is_empty(), "{differ:#?}");
}

#[test]
fn every_documented_route_is_routed_by_api_gateway() {
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml");
    let text = std::fs::read_to_string(spec).expect("docs/openapi.yaml");
    let spec: Value = serde_norway::from_str(&text).expect("openapi.yaml parses");
    let deployed = template_routes(&template_resources());
    let paths = spec["paths"].as_object().expect("the spec has paths");
    let missing: Vec<&String> = paths
        .keys()
        .filter(|p| !deployed.contains_key(*p))
        .collect();
    assert!(missing.is_empty(), "documented but not routed: {missing:?}");
}

#[test]
fn every_route_the_admin_and_pages_functions_serve_reaches_them_once_deployed_and_locally() {
    let deployed = template_routes(&template_resources());
    let local = local_routes();
    let served = admin_api::route_paths()
        .into_iter()
        .map(|path| (path, "admin-api"))
        .chain(
            cashback_pages::route_paths()
                .into_iter()
                .map(|path| (path, "pages")),
        );
    let mut unreachable = Vec::new();
    for (path, function) in served {
        for (routes, by) in [(&deployed, "template.yaml"), (&local, "Cargo.toml")] {
            if routes.get(path).map(String::as_str) != Some(function) {
                unreachable.push(format!(
                    "{path}: {function} serves it, {by} routes it to {:?}",
                    routes.get(path)
                ));
            }
        }
    }
    assert!(unreachable.is_empty(), "{unreachable:#?}");
}
