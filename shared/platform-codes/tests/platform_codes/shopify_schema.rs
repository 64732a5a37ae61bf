//! Every GraphQL document the Shopify adapter sends, and the variables it
//! sends with them, checked against Shopify's Admin API schema for
//! [`API_VERSION`]: fields exist on their types (inline fragments on the
//! union's members), arguments exist and take the declared variables'
//! types, required arguments are given, variables are declared and used,
//! and the input objects sent hold only fields of their input types, with
//! values of the right kind.
//!
//! The schema is fetched by `infra/shopify-schema.sh` (npm package
//! @shopify/dev-mcp) into ~/.cache/cashback-engine/ or named by
//! SHOPIFY_ADMIN_SCHEMA. Without it the test prints a note and passes,
//! unless REQUIRE_SHOPIFY_SCHEMA=1.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use rust_decimal_macros::dec;
use serde_json::Value;

use cashback_app::platform_codes::{CodeOwner, Combines, DesiredCode};
use cashback_core::ids::{Code, CustomerId};
use cashback_core::money::{Currency, Money};
use cashback_platform_codes::shopify::{discount_input, documents, API_VERSION};
use cashback_platform_codes::store_credit;

// ---- A small GraphQL reader: the subset the adapter writes (operations
// ---- with variables, fields with arguments, inline fragments).

#[derive(Debug, Clone, PartialEq)]
enum TypeRef {
    Named(String),
    List(Box<TypeRef>),
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    fn named(&self) -> &str {
        match self {
            TypeRef::Named(n) => n,
            TypeRef::List(t) | TypeRef::NonNull(t) => t.named(),
        }
    }

    fn from_introspection(value: &Value) -> TypeRef {
        match value["kind"].as_str() {
            Some("NON_NULL") => {
                TypeRef::NonNull(Box::new(TypeRef::from_introspection(&value["ofType"])))
            }
            Some("LIST") => TypeRef::List(Box::new(TypeRef::from_introspection(&value["ofType"]))),
            _ => TypeRef::Named(value["name"].as_str().unwrap_or_default().to_string()),
        }
    }
}

/// A variable of type `variable` may be passed where `location` is
/// expected (the GraphQL spec's "AreTypesCompatible").
fn compatible(variable: &TypeRef, location: &TypeRef) -> bool {
    match (variable, location) {
        (TypeRef::NonNull(v), TypeRef::NonNull(l)) => compatible(v, l),
        (_, TypeRef::NonNull(_)) => false,
        (TypeRef::NonNull(v), l) => compatible(v, l),
        (TypeRef::List(v), TypeRef::List(l)) => compatible(v, l),
        (TypeRef::Named(v), TypeRef::Named(l)) => v == l,
        _ => false,
    }
}

#[derive(Debug)]
enum Selection {
    Field {
        name: String,
        arguments: Vec<(String, String)>,
        selections: Vec<Selection>,
    },
    Fragment {
        on: String,
        selections: Vec<Selection>,
    },
}

#[derive(Debug)]
struct Operation {
    kind: String,
    variables: Vec<(String, TypeRef)>,
    selections: Vec<Selection>,
}

struct Reader {
    tokens: Vec<String>,
    at: usize,
}

impl Reader {
    fn new(source: &str) -> Reader {
        let mut tokens = Vec::new();
        let chars: Vec<char> = source.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() || c == ',' {
                i += 1;
            } else if c == '#' {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            } else if source[i..].starts_with("...") && chars[i] == '.' {
                tokens.push("...".into());
                i += 3;
            } else if "{}()[]:!$=".contains(c) {
                tokens.push(c.to_string());
                i += 1;
            } else if c.is_alphanumeric() || c == '_' || c == '"' || c == '-' {
                let start = i;
                if c == '"' {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < chars.len()
                        && (chars[i].is_alphanumeric()
                            || chars[i] == '_'
                            || chars[i] == '-'
                            || chars[i] == '.')
                    {
                        i += 1;
                    }
                }
                tokens.push(chars[start..i].iter().collect());
            } else {
                panic!("unexpected character {c:?} in document");
            }
        }
        Reader { tokens, at: 0 }
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> String {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .unwrap_or_else(|| panic!("document ends early"));
        self.at += 1;
        token
    }

    fn expect(&mut self, token: &str) {
        let got = self.next();
        assert_eq!(got, token, "expected {token}");
    }

    fn operation(&mut self) -> Operation {
        let kind = self.next();
        assert!(
            kind == "query" || kind == "mutation",
            "not an operation: {kind}"
        );
        if self.peek() != Some("(") && self.peek() != Some("{") {
            self.next(); // the operation's name
        }
        let mut variables = Vec::new();
        if self.peek() == Some("(") {
            self.next();
            while self.peek() != Some(")") {
                self.expect("$");
                let name = self.next();
                self.expect(":");
                variables.push((name, self.type_ref()));
            }
            self.next();
        }
        let selections = self.selection_set();
        assert_eq!(self.peek(), None, "one operation per document");
        Operation {
            kind,
            variables,
            selections,
        }
    }

    fn type_ref(&mut self) -> TypeRef {
        let base = if self.peek() == Some("[") {
            self.next();
            let inner = self.type_ref();
            self.expect("]");
            TypeRef::List(Box::new(inner))
        } else {
            TypeRef::Named(self.next())
        };
        if self.peek() == Some("!") {
            self.next();
            TypeRef::NonNull(Box::new(base))
        } else {
            base
        }
    }

    fn selection_set(&mut self) -> Vec<Selection> {
        self.expect("{");
        let mut selections = Vec::new();
        while self.peek() != Some("}") {
            if self.peek() == Some("...") {
                self.next();
                self.expect("on");
                let on = self.next();
                selections.push(Selection::Fragment {
                    on,
                    selections: self.selection_set(),
                });
                continue;
            }
            let name = self.next();
            let mut arguments = Vec::new();
            if self.peek() == Some("(") {
                self.next();
                while self.peek() != Some(")") {
                    let argument = self.next();
                    self.expect(":");
                    let value = if self.peek() == Some("$") {
                        self.next();
                        format!("${}", self.next())
                    } else {
                        self.next()
                    };
                    arguments.push((argument, value));
                }
                self.next();
            }
            let selections_of = if self.peek() == Some("{") {
                self.selection_set()
            } else {
                Vec::new()
            };
            selections.push(Selection::Field {
                name,
                arguments,
                selections: selections_of,
            });
        }
        self.next();
        selections
    }
}

// ---- The schema.

struct Schema {
    types: HashMap<String, Value>,
    query: String,
    mutation: String,
}

impl Schema {
    fn load() -> Option<Schema> {
        let path = std::env::var_os("SHOPIFY_ADMIN_SCHEMA")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|home| {
                    PathBuf::from(home)
                        .join(".cache/cashback-engine")
                        .join(format!("shopify-admin-{API_VERSION}.json"))
                })
            })?;
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(_) => {
                let required = std::env::var("REQUIRE_SHOPIFY_SCHEMA").as_deref() == Ok("1");
                assert!(
                    !required,
                    "REQUIRE_SHOPIFY_SCHEMA=1 but {} is missing: run infra/shopify-schema.sh",
                    path.display()
                );
                println!(
                    "note: Shopify's admin schema {} is absent (bash infra/shopify-schema.sh fetches it); \
                     the documents were not checked",
                    path.display()
                );
                return None;
            }
        };
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let schema = json
            .pointer("/data/__schema")
            .or_else(|| json.get("__schema"))
            .cloned()
            .unwrap_or_else(|| panic!("no __schema in {}", path.display()));
        let types = schema["types"]
            .as_array()
            .unwrap_or_else(|| panic!("no types"))
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap_or_default().to_string(),
                    t.clone(),
                )
            })
            .collect();
        Some(Schema {
            types,
            query: schema["queryType"]["name"]
                .as_str()
                .unwrap_or("QueryRoot")
                .to_string(),
            mutation: schema["mutationType"]["name"]
                .as_str()
                .unwrap_or("Mutation")
                .to_string(),
        })
    }

    fn kind(&self, name: &str) -> &str {
        self.types
            .get(name)
            .and_then(|t| t["kind"].as_str())
            .unwrap_or_else(|| panic!("type {name} is not in the schema"))
    }

    fn field(&self, on: &str, name: &str) -> Option<&Value> {
        self.types.get(on)?["fields"]
            .as_array()?
            .iter()
            .find(|f| f["name"] == name)
    }

    fn possible(&self, on: &str) -> Vec<String> {
        self.types[on]["possibleTypes"]
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(|t| t["name"].as_str())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn check_selections(
        &self,
        on: &str,
        selections: &[Selection],
        variables: &HashMap<String, TypeRef>,
        used: &mut BTreeSet<String>,
        problems: &mut Vec<String>,
    ) {
        for selection in selections {
            match selection {
                Selection::Fragment {
                    on: fragment,
                    selections,
                } => {
                    if fragment != on && !self.possible(on).contains(fragment) {
                        problems.push(format!("... on {fragment}: not a member of {on}"));
                        continue;
                    }
                    self.check_selections(fragment, selections, variables, used, problems);
                }
                Selection::Field {
                    name,
                    arguments,
                    selections,
                } => {
                    if name == "__typename" {
                        continue;
                    }
                    let Some(field) = self.field(on, name) else {
                        problems.push(format!("{on}.{name}: no such field"));
                        continue;
                    };
                    let args: Vec<&Value> = field["args"]
                        .as_array()
                        .map(|a| a.iter().collect())
                        .unwrap_or_default();
                    for (argument, value) in arguments {
                        let Some(arg) = args.iter().find(|a| a["name"] == argument.as_str()) else {
                            problems.push(format!("{on}.{name}({argument}): no such argument"));
                            continue;
                        };
                        let expected = TypeRef::from_introspection(&arg["type"]);
                        if let Some(variable) = value.strip_prefix('$') {
                            used.insert(variable.to_string());
                            match variables.get(variable) {
                                None => problems.push(format!("${variable}: not declared")),
                                Some(declared) if !compatible(declared, &expected) => problems.push(format!(
                                    "{on}.{name}({argument}): ${variable} is {declared:?}, the argument takes {expected:?}"
                                )),
                                Some(_) => {}
                            }
                        }
                    }
                    for arg in &args {
                        let required =
                            arg["type"]["kind"] == "NON_NULL" && arg["defaultValue"].is_null();
                        let name_of = arg["name"].as_str().unwrap_or_default();
                        if required && !arguments.iter().any(|(a, _)| a == name_of) {
                            problems
                                .push(format!("{on}.{name}: required argument {name_of} missing"));
                        }
                    }
                    let returns = TypeRef::from_introspection(&field["type"]);
                    let target = returns.named();
                    let composite = matches!(self.kind(target), "OBJECT" | "INTERFACE" | "UNION");
                    if composite && selections.is_empty() {
                        problems.push(format!("{on}.{name}: {target} needs a selection"));
                    }
                    if !composite && !selections.is_empty() {
                        problems.push(format!("{on}.{name}: {target} takes no selection"));
                    }
                    if composite {
                        self.check_selections(target, selections, variables, used, problems);
                    }
                    if field["isDeprecated"] == true {
                        problems.push(format!(
                            "{on}.{name}: deprecated ({})",
                            field["deprecationReason"]
                        ));
                    }
                }
            }
        }
    }

    /// Checks a JSON value against an input type, as Shopify coerces a
    /// variable's value.
    fn check_value(
        &self,
        path: &str,
        value: &Value,
        expected: &TypeRef,
        problems: &mut Vec<String>,
    ) {
        match expected {
            TypeRef::NonNull(inner) => {
                if value.is_null() {
                    problems.push(format!("{path}: must not be null"));
                } else {
                    self.check_value(path, value, inner, problems);
                }
            }
            _ if value.is_null() => {}
            TypeRef::List(inner) => match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check_value(&format!("{path}[{i}]"), item, inner, problems);
                    }
                }
                None => self.check_value(path, value, inner, problems),
            },
            TypeRef::Named(name) => {
                let ty = &self.types[name.as_str()];
                match ty["kind"].as_str() {
                    Some("INPUT_OBJECT") => {
                        let Some(fields) = value.as_object() else {
                            problems.push(format!("{path}: {name} needs an object"));
                            return;
                        };
                        let declared: Vec<&Value> = ty["inputFields"]
                            .as_array()
                            .map(|f| f.iter().collect())
                            .unwrap_or_default();
                        for (key, inner) in fields {
                            match declared.iter().find(|f| f["name"] == key.as_str()) {
                                Some(field) => {
                                    if field["isDeprecated"] == true {
                                        problems.push(format!("{path}.{key}: deprecated"));
                                    }
                                    self.check_value(
                                        &format!("{path}.{key}"),
                                        inner,
                                        &TypeRef::from_introspection(&field["type"]),
                                        problems,
                                    );
                                }
                                None => {
                                    problems.push(format!("{path}.{key}: not a field of {name}"));
                                }
                            }
                        }
                        for field in declared {
                            let required = field["type"]["kind"] == "NON_NULL"
                                && field["defaultValue"].is_null();
                            let key = field["name"].as_str().unwrap_or_default();
                            if required && !fields.contains_key(key) {
                                problems.push(format!("{path}.{key}: required by {name}"));
                            }
                        }
                    }
                    Some("ENUM") => {
                        let allowed = ty["enumValues"]
                            .as_array()
                            .map(|v| v.iter().any(|e| e["name"] == *value))
                            .unwrap_or(false);
                        if !allowed {
                            problems.push(format!("{path}: {value} is not a value of {name}"));
                        }
                    }
                    Some("SCALAR") => {
                        let ok = match name.as_str() {
                            "Boolean" => value.is_boolean(),
                            "Int" => value.is_i64(),
                            "Float" => value.is_number(),
                            // String, ID, DateTime, Decimal, URL...: strings.
                            _ => value.is_string(),
                        };
                        if !ok {
                            problems.push(format!("{path}: {value} is not a {name}"));
                        }
                    }
                    other => {
                        problems.push(format!("{path}: {name} is a {other:?}, not an input type"));
                    }
                }
            }
        }
    }
}

fn sample(restricted: bool, active: bool) -> DesiredCode {
    DesiredCode {
        code: Code::parse("CB-ABC").unwrap(),
        account: CustomerId::parse("42").unwrap(),
        amount: Money::new(if active { dec!(12.30) } else { dec!(0) }, Currency::USD).unwrap(),
        active,
        restricted_to: restricted.then(|| CodeOwner {
            customer: Some(CustomerId::parse("42").unwrap()),
            email: None,
        }),
        min_subtotal: Money::new(dec!(20), Currency::USD).unwrap(),
        combines: Combines {
            shipping: true,
            order: false,
            product: true,
        },
    }
}

#[test]
fn every_document_and_variable_the_adapter_sends_fits_the_admin_schema() {
    let Some(schema) = Schema::load() else {
        return;
    };
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let mut problems = Vec::new();
    let mut declared_by_document = HashMap::new();
    for (name, document) in documents() {
        let operation = Reader::new(&document).operation();
        let root = if operation.kind == "mutation" {
            &schema.mutation
        } else {
            &schema.query
        };
        let variables: HashMap<String, TypeRef> = operation.variables.iter().cloned().collect();
        for (variable, declared) in &operation.variables {
            let kind = schema.kind(declared.named());
            if !matches!(kind, "SCALAR" | "ENUM" | "INPUT_OBJECT") {
                problems.push(format!("{name}: ${variable} is a {kind}"));
            }
        }
        let mut used = BTreeSet::new();
        let mut found = Vec::new();
        schema.check_selections(
            root,
            &operation.selections,
            &variables,
            &mut used,
            &mut found,
        );
        problems.extend(found.into_iter().map(|p| format!("{name}: {p}")));
        for variable in variables.keys() {
            if !used.contains(variable) {
                problems.push(format!("{name}: ${variable} declared, never used"));
            }
        }
        declared_by_document.insert(name, variables);
    }
    // The variables sent with each document.
    let mut sent: Vec<(&str, Value)> = Vec::new();
    for restricted in [true, false] {
        for active in [true, false] {
            let desired = sample(restricted, active);
            sent.push((
                "create",
                serde_json::json!({"input": discount_input(&desired, true, now).unwrap()}),
            ));
            sent.push((
                "update",
                serde_json::json!({"id": "gid://shopify/DiscountCodeNode/1", "input": discount_input(&desired, false, now).unwrap()}),
            ));
        }
    }
    sent.push(("lookup", serde_json::json!({"code": "CB-ABC"})));
    sent.push((
        "deactivate",
        serde_json::json!({"id": "gid://shopify/DiscountCodeNode/1"}),
    ));
    let ann = CustomerId::parse("42").unwrap();
    let amount = Money::new(dec!(12.30), Currency::USD).unwrap();
    sent.push((
        "store_credit_account",
        store_credit::account_variables(&ann, Currency::USD, 50, None),
    ));
    sent.push((
        "store_credit_account",
        store_credit::account_variables(&ann, Currency::USD, 50, Some("eyJsYXN0X2lkIjoxfQ==")),
    ));
    sent.push((
        "store_credit_newest",
        store_credit::newest_variables(&ann, Currency::USD),
    ));
    sent.push((
        "store_credit_credit",
        store_credit::credit_variables(&ann, amount),
    ));
    sent.push((
        "store_credit_debit",
        store_credit::debit_variables("gid://shopify/StoreCreditAccount/1", amount),
    ));
    for (name, variables) in &sent {
        let declared = &declared_by_document[name];
        for (variable, value) in variables.as_object().unwrap() {
            match declared.get(variable) {
                Some(ty) => {
                    schema.check_value(&format!("{name} ${variable}"), value, ty, &mut problems);
                }
                None => problems.push(format!("{name}: ${variable} sent but not declared")),
            }
        }
        for (variable, ty) in declared {
            if matches!(ty, TypeRef::NonNull(_)) && variables.get(variable).is_none() {
                problems.push(format!("{name}: ${variable} declared non-null, not sent"));
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(
        problems.is_empty(),
        "against the {API_VERSION} admin schema:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_reader_and_checker_catch_what_shopify_would_refuse() {
    let Some(schema) = Schema::load() else {
        return;
    };
    let document = "query Q($code: String, $unused: Int) { codeDiscountNodeByCode(code: $code) { id nope codeDiscount { ... on Customer { id } } } }";
    let operation = Reader::new(document).operation();
    let variables: HashMap<String, TypeRef> = operation.variables.iter().cloned().collect();
    let mut used = BTreeSet::new();
    let mut problems = Vec::new();
    schema.check_selections(
        &schema.query,
        &operation.selections,
        &variables,
        &mut used,
        &mut problems,
    );
    let all = problems.join("\n");
    assert!(all.contains("nope: no such field"), "{all}");
    assert!(all.contains("on Customer: not a member"), "{all}");
    assert!(
        all.contains("$code is"),
        "a nullable variable for a non-null argument: {all}"
    );
    assert!(!used.contains("unused"));
    let mut problems = Vec::new();
    let input = serde_json::json!({"customerGets": {"value": {"discountAmount": {"amount": 5}}}, "colour": "red"});
    schema.check_value(
        "$input",
        &input,
        &TypeRef::Named("DiscountCodeBasicInput".into()),
        &mut problems,
    );
    let all = problems.join("\n");
    assert!(all.contains("colour: not a field"), "{all}");
    assert!(all.contains("amount: 5 is not a Decimal"), "{all}");
}
