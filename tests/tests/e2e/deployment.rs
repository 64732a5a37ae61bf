//! The deployment template (template.yaml) against what production needs
//! to see: DynamoDB publishes throttle events per index, so an index
//! without its own alarms throttles silently (the table's alarms do not
//! count an index's throttles).

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
