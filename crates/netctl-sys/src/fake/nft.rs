//! A small model of nftables for [`super::FakeSys`]: enough of `nft -j -f` to keep tables,
//! chains, rules, sets and their elements, and of `nft -j list table` to show them again.
//!
//! Invariants:
//! * A document applies as a whole or not at all, like an nft transaction.
//! * Anything the model does not know is refused with an error naming it, so a planner test
//!   never passes because the fake silently ignored a command.

use serde_json::{Map, Value, json};

use crate::NftFamily;

/// One table with its contents, in creation order.
#[derive(Debug, Clone, PartialEq)]
struct Table {
    family: String,
    name: String,
    handle: u64,
    chains: Vec<Chain>,
    sets: Vec<Set>,
}

#[derive(Debug, Clone, PartialEq)]
struct Chain {
    /// The chain object as given (type, hook, prio, policy...), without family/table/name.
    attributes: Map<String, Value>,
    name: String,
    handle: u64,
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    /// The rule object as given (expr, comment...), without family/table/chain.
    attributes: Map<String, Value>,
    handle: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Set {
    /// `set` or `map`.
    object: String,
    attributes: Map<String, Value>,
    name: String,
    handle: u64,
    elements: Vec<Value>,
}

/// The whole modelled ruleset.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct NftModel {
    tables: Vec<Table>,
    /// nft numbers objects with handles; one counter is enough for the fake.
    next_handle: u64,
}

/// Why a document was refused; `errno` is the text nft would print.
#[derive(Debug)]
pub(crate) struct NftRefusal {
    pub(crate) message: String,
}

fn refusal(errno: &str, command: &Value) -> NftRefusal {
    NftRefusal {
        message: format!("Error: Could not process rule: {errno}\n{command}"),
    }
}

fn not_found(command: &Value) -> NftRefusal {
    refusal("No such file or directory", command)
}

fn exists(command: &Value) -> NftRefusal {
    refusal("File exists", command)
}

fn unsupported(what: &str, command: &Value) -> NftRefusal {
    NftRefusal {
        message: format!("Error: FakeSys does not model {what}\n{command}"),
    }
}

fn field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    command: &Value,
) -> Result<&'a str, NftRefusal> {
    object
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| NftRefusal {
            message: format!("Error: missing or non-string \"{key}\"\n{command}"),
        })
}

/// `object` without the keys that place it (they are implied by where it is stored).
fn without(object: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    object
        .iter()
        .filter(|(k, _)| !keys.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl NftModel {
    /// Applies a whole JSON document, or nothing.
    pub(crate) fn apply(&mut self, json: &str) -> Result<(), NftRefusal> {
        let document: Value = serde_json::from_str(json).map_err(|e| NftRefusal {
            message: format!("Error: Failed to parse JSON: {e}"),
        })?;
        let commands = document
            .get("nftables")
            .and_then(Value::as_array)
            .ok_or_else(|| NftRefusal {
                message: "Error: JSON document has no \"nftables\" array".to_owned(),
            })?;
        let mut next = self.clone();
        for command in commands {
            next.command(command)?;
        }
        *self = next;
        Ok(())
    }

    fn handle(&mut self) -> u64 {
        self.next_handle += 1;
        self.next_handle
    }

    fn table_index(&self, family: &str, name: &str) -> Option<usize> {
        self.tables
            .iter()
            .position(|t| t.family == family && t.name == name)
    }

    fn table_mut(
        &mut self,
        object: &Map<String, Value>,
        command: &Value,
    ) -> Result<&mut Table, NftRefusal> {
        let family = field(object, "family", command)?;
        let name = field(object, "table", command)?;
        let index = self
            .table_index(family, name)
            .ok_or_else(|| not_found(command))?;
        Ok(&mut self.tables[index])
    }

    fn command(&mut self, command: &Value) -> Result<(), NftRefusal> {
        let Some((verb, body)) = command.as_object().and_then(|o| o.iter().next()) else {
            return Err(unsupported("a command that is not an object", command));
        };
        if verb == "metainfo" {
            return Ok(());
        }
        let Some((object_kind, object)) = body.as_object().and_then(|o| o.iter().next()) else {
            return Err(unsupported(&format!("`{verb}` without an object"), command));
        };
        if object_kind == "ruleset" && verb == "flush" {
            self.tables.clear();
            return Ok(());
        }
        let Some(object) = object.as_object() else {
            return Err(unsupported(
                &format!("`{verb} {object_kind}` with a non-object"),
                command,
            ));
        };
        match (verb.as_str(), object_kind.as_str()) {
            ("add" | "create", "table") => self.add_table(object, verb == "create", command),
            ("delete", "table") => {
                let family = field(object, "family", command)?;
                let name = field(object, "name", command)?;
                let index = self
                    .table_index(family, name)
                    .ok_or_else(|| not_found(command))?;
                self.tables.remove(index);
                Ok(())
            }
            ("flush", "table") => {
                let family = field(object, "family", command)?;
                let name = field(object, "name", command)?;
                let index = self
                    .table_index(family, name)
                    .ok_or_else(|| not_found(command))?;
                let table = &mut self.tables[index];
                table
                    .chains
                    .iter_mut()
                    .for_each(|chain| chain.rules.clear());
                table.sets.iter_mut().for_each(|set| set.elements.clear());
                Ok(())
            }
            ("add" | "create", "chain") => self.add_chain(object, verb == "create", command),
            ("delete", "chain") => {
                let name = field(object, "name", command)?.to_owned();
                let table = self.table_mut(object, command)?;
                let index = table
                    .chains
                    .iter()
                    .position(|c| c.name == name)
                    .ok_or_else(|| not_found(command))?;
                if !table.chains[index].rules.is_empty() {
                    return Err(refusal("Device or resource busy", command));
                }
                table.chains.remove(index);
                Ok(())
            }
            ("flush", "chain") => {
                let name = field(object, "name", command)?.to_owned();
                let table = self.table_mut(object, command)?;
                let chain = table
                    .chains
                    .iter_mut()
                    .find(|c| c.name == name)
                    .ok_or_else(|| not_found(command))?;
                chain.rules.clear();
                Ok(())
            }
            ("add" | "insert", "rule") => self.add_rule(object, verb == "insert", command),
            ("delete", "rule") => {
                let chain_name = field(object, "chain", command)?.to_owned();
                let handle = object.get("handle").and_then(Value::as_u64);
                let table = self.table_mut(object, command)?;
                let chain = table
                    .chains
                    .iter_mut()
                    .find(|c| c.name == chain_name)
                    .ok_or_else(|| not_found(command))?;
                let index = chain
                    .rules
                    .iter()
                    .position(|r| Some(r.handle) == handle)
                    .ok_or_else(|| not_found(command))?;
                chain.rules.remove(index);
                Ok(())
            }
            ("add" | "create", "set" | "map") => {
                self.add_set(object_kind, object, verb == "create", command)
            }
            ("delete", "set" | "map") => {
                let name = field(object, "name", command)?.to_owned();
                let table = self.table_mut(object, command)?;
                let index = table
                    .sets
                    .iter()
                    .position(|s| s.name == name)
                    .ok_or_else(|| not_found(command))?;
                table.sets.remove(index);
                Ok(())
            }
            ("flush", "set" | "map") => {
                let set = self.set_mut(object, command)?;
                set.elements.clear();
                Ok(())
            }
            ("add" | "create", "element") => {
                let create = verb == "create";
                let elements = element_list(object, command)?;
                let set = self.set_mut(object, command)?;
                for element in elements {
                    if set.elements.contains(&element) {
                        if create {
                            return Err(exists(command));
                        }
                    } else {
                        set.elements.push(element);
                    }
                }
                Ok(())
            }
            ("delete", "element") => {
                let elements = element_list(object, command)?;
                let set = self.set_mut(object, command)?;
                for element in elements {
                    let index = set
                        .elements
                        .iter()
                        .position(|e| *e == element)
                        .ok_or_else(|| not_found(command))?;
                    set.elements.remove(index);
                }
                Ok(())
            }
            (verb, kind) => Err(unsupported(&format!("`{verb} {kind}`"), command)),
        }
    }

    fn add_table(
        &mut self,
        object: &Map<String, Value>,
        create: bool,
        command: &Value,
    ) -> Result<(), NftRefusal> {
        let family = field(object, "family", command)?;
        if NftFamily::from_name(family).is_none() {
            return Err(refusal("Invalid argument", command));
        }
        let name = field(object, "name", command)?;
        if self.table_index(family, name).is_some() {
            return if create { Err(exists(command)) } else { Ok(()) };
        }
        let table = Table {
            family: family.to_owned(),
            name: name.to_owned(),
            handle: self.handle(),
            chains: Vec::new(),
            sets: Vec::new(),
        };
        self.tables.push(table);
        Ok(())
    }

    fn add_chain(
        &mut self,
        object: &Map<String, Value>,
        create: bool,
        command: &Value,
    ) -> Result<(), NftRefusal> {
        let name = field(object, "name", command)?.to_owned();
        let attributes = without(object, &["family", "table", "name", "handle"]);
        let handle = self.handle();
        let table = self.table_mut(object, command)?;
        if let Some(chain) = table.chains.iter_mut().find(|c| c.name == name) {
            if create {
                return Err(exists(command));
            }
            // `add` of an existing chain updates what it says (a base chain's policy, say).
            chain.attributes.extend(attributes);
            return Ok(());
        }
        table.chains.push(Chain {
            attributes,
            name,
            handle,
            rules: Vec::new(),
        });
        Ok(())
    }

    fn add_rule(
        &mut self,
        object: &Map<String, Value>,
        insert: bool,
        command: &Value,
    ) -> Result<(), NftRefusal> {
        if object.contains_key("handle") || object.contains_key("index") {
            return Err(unsupported("rules placed by handle or index", command));
        }
        let chain_name = field(object, "chain", command)?.to_owned();
        let attributes = without(object, &["family", "table", "chain"]);
        let handle = self.handle();
        let table = self.table_mut(object, command)?;
        let chain = table
            .chains
            .iter_mut()
            .find(|c| c.name == chain_name)
            .ok_or_else(|| not_found(command))?;
        let rule = Rule { attributes, handle };
        if insert {
            chain.rules.insert(0, rule);
        } else {
            chain.rules.push(rule);
        }
        Ok(())
    }

    fn add_set(
        &mut self,
        kind: &str,
        object: &Map<String, Value>,
        create: bool,
        command: &Value,
    ) -> Result<(), NftRefusal> {
        let name = field(object, "name", command)?.to_owned();
        let attributes = without(object, &["family", "table", "name", "handle", "elem"]);
        let elements = object
            .get("elem")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let handle = self.handle();
        let table = self.table_mut(object, command)?;
        if let Some(set) = table.sets.iter_mut().find(|s| s.name == name) {
            if create {
                return Err(exists(command));
            }
            for element in elements {
                if !set.elements.contains(&element) {
                    set.elements.push(element);
                }
            }
            return Ok(());
        }
        table.sets.push(Set {
            object: kind.to_owned(),
            attributes,
            name,
            handle,
            elements,
        });
        Ok(())
    }

    fn set_mut(
        &mut self,
        object: &Map<String, Value>,
        command: &Value,
    ) -> Result<&mut Set, NftRefusal> {
        let name = field(object, "name", command)?.to_owned();
        let table = self.table_mut(object, command)?;
        table
            .sets
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| not_found(command))
    }

    /// The number of rules in a table (0 for a missing one), like the kernel's filtered dump.
    pub(crate) fn rule_count(&self, family: NftFamily, name: &str) -> usize {
        self.table_index(family.as_str(), name).map_or(0, |index| {
            self.tables[index]
                .chains
                .iter()
                .map(|chain| chain.rules.len())
                .sum()
        })
    }

    /// `nft -j list table` output for one table, or `None` when it does not exist.
    pub(crate) fn list_table(&self, family: NftFamily, name: &str) -> Option<String> {
        let table = &self.tables[self.table_index(family.as_str(), name)?];
        let mut items = vec![
            json!({"metainfo": {"version": "fake", "release_name": "FakeSys", "json_schema_version": 1}}),
            json!({"table": {"family": table.family, "name": table.name, "handle": table.handle}}),
        ];
        let place = |mut attributes: Map<String, Value>, key: &str, name: &str, handle: u64| {
            attributes.insert("family".into(), table.family.clone().into());
            attributes.insert("table".into(), table.name.clone().into());
            attributes.insert(key.into(), name.into());
            attributes.insert("handle".into(), handle.into());
            attributes
        };
        for chain in &table.chains {
            let object = place(chain.attributes.clone(), "name", &chain.name, chain.handle);
            items.push(json!({ "chain": object }));
        }
        for set in &table.sets {
            let mut object = place(set.attributes.clone(), "name", &set.name, set.handle);
            if !set.elements.is_empty() {
                object.insert("elem".into(), Value::Array(set.elements.clone()));
            }
            items.push(json!({ set.object.clone(): object }));
        }
        for chain in &table.chains {
            for rule in &chain.rules {
                let object = place(rule.attributes.clone(), "chain", &chain.name, rule.handle);
                items.push(json!({ "rule": object }));
            }
        }
        Some(json!({ "nftables": items }).to_string())
    }

    /// Names of all tables, as `family name`, sorted.
    pub(crate) fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tables
            .iter()
            .map(|t| format!("{} {}", t.family, t.name))
            .collect();
        names.sort();
        names
    }
}

fn element_list(object: &Map<String, Value>, command: &Value) -> Result<Vec<Value>, NftRefusal> {
    match object.get("elem") {
        Some(Value::Array(elements)) => Ok(elements.clone()),
        Some(element) => Ok(vec![element.clone()]),
        None => Err(NftRefusal {
            message: format!("Error: element command without \"elem\"\n{command}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(model: &NftModel) -> Value {
        serde_json::from_str(&model.list_table(NftFamily::Inet, "netctl").expect("table")).unwrap()
    }

    #[test]
    fn builds_lists_and_flushes_a_table() {
        let mut model = NftModel::default();
        model
            .apply(
                r#"{"nftables":[
                {"add":{"table":{"family":"inet","name":"netctl"}}},
                {"add":{"chain":{"family":"inet","table":"netctl","name":"FORWARD","type":"filter","hook":"forward","prio":0,"policy":"accept"}}},
                {"add":{"rule":{"family":"inet","table":"netctl","chain":"FORWARD","expr":[{"accept":null}]}}},
                {"insert":{"rule":{"family":"inet","table":"netctl","chain":"FORWARD","expr":[{"drop":null}]}}},
                {"add":{"set":{"family":"inet","table":"netctl","name":"ports","type":"inet_service"}}},
                {"add":{"element":{"family":"inet","table":"netctl","name":"ports","elem":[80,443]}}}
            ]}"#,
            )
            .unwrap();
        let listed = list(&model);
        let items = listed["nftables"].as_array().unwrap();
        assert_eq!(items[1]["table"]["name"], "netctl");
        assert_eq!(items[2]["chain"]["hook"], "forward");
        assert_eq!(items[3]["set"]["elem"], json!([80, 443]));
        // insert puts the drop rule first.
        assert_eq!(items[4]["rule"]["expr"], json!([{"drop": null}]));
        assert_eq!(items[5]["rule"]["expr"], json!([{"accept": null}]));

        model
            .apply(r#"{"nftables":[{"flush":{"table":{"family":"inet","name":"netctl"}}}]}"#)
            .unwrap();
        let items = list(&model)["nftables"].as_array().unwrap().len();
        assert_eq!(items, 4, "chains and sets stay, rules and elements go");
    }

    #[test]
    fn a_failing_document_changes_nothing() {
        let mut model = NftModel::default();
        model
            .apply(r#"{"nftables":[{"add":{"table":{"family":"inet","name":"netctl"}}}]}"#)
            .unwrap();
        let before = model.clone();
        let err = model
            .apply(
                r#"{"nftables":[
                {"delete":{"table":{"family":"inet","name":"netctl"}}},
                {"add":{"chain":{"family":"inet","table":"netctl","name":"x"}}}
            ]}"#,
            )
            .unwrap_err();
        assert!(
            err.message.contains("No such file or directory"),
            "{}",
            err.message
        );
        assert_eq!(model, before);
    }

    #[test]
    fn create_of_an_existing_table_and_unknown_commands_are_refused() {
        let mut model = NftModel::default();
        let add = r#"{"nftables":[{"add":{"table":{"family":"inet","name":"t"}}}]}"#;
        model.apply(add).unwrap();
        model.apply(add).unwrap();
        let err = model
            .apply(r#"{"nftables":[{"create":{"table":{"family":"inet","name":"t"}}}]}"#)
            .unwrap_err();
        assert!(err.message.contains("File exists"));
        let err = model
            .apply(r#"{"nftables":[{"replace":{"rule":{"family":"inet","table":"t","chain":"c","handle":1}}}]}"#)
            .unwrap_err();
        assert!(
            err.message.contains("does not model `replace rule`"),
            "{}",
            err.message
        );
        assert!(model.apply("not json").is_err());
        assert_eq!(model.table_names(), ["inet t"]);
    }

    #[test]
    fn deleting_a_chain_with_rules_is_busy() {
        let mut model = NftModel::default();
        model
            .apply(
                r#"{"nftables":[
                {"add":{"table":{"family":"ip","name":"t"}}},
                {"add":{"chain":{"family":"ip","table":"t","name":"c"}}},
                {"add":{"rule":{"family":"ip","table":"t","chain":"c","expr":[]}}}
            ]}"#,
            )
            .unwrap();
        let err = model
            .apply(r#"{"nftables":[{"delete":{"chain":{"family":"ip","table":"t","name":"c"}}}]}"#)
            .unwrap_err();
        assert!(err.message.contains("Device or resource busy"));
    }
}
