//! What a kind brings to the generic object store: kube-apiserver's
//! `RESTCreateStrategy` / `RESTUpdateStrategy` / `RESTDeleteStrategy` and its
//! table convertor, as one trait.
//!
//! The store layer runs the same pipeline for every kind and asks the kind's
//! [`Strategy`] only what differs:
//! - create: [`Strategy::default`], [`Strategy::validate`], then
//!   [`Strategy::allocate`] (claims made in the object's transaction);
//! - update: [`Strategy::default`], [`Strategy::validate_update`] (which
//!   checks [`Strategy::immutable`] fields generically), then
//!   [`Strategy::reallocate`];
//! - delete: [`Strategy::release`].
//!
//! The API reads the rest from the same place: the OpenAPI root type
//! ([`Strategy::type_name`], whose field types also drive strict field
//! validation and strategic-merge-patch merge keys, see [`super::types`])
//! and the table printer ([`Strategy::columns`], [`Strategy::row`]).
//!
//! Invariants: strategies are pure (no I/O, no clock except what the caller
//! passes, randomness only to pick free IPs and ports); defaulting never
//! fails; validation reports every problem as a field error rather than
//! stopping at the first.

use super::claim::Claim;
use super::print::{self, Column, Row};
use super::validate::{self, Errors};
use serde_json::Value;

/// How `metadata.name` must be spelt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 subdomain (most kinds).
    Subdomain,
    /// A DNS-1123 label (Namespaces and Services, whose names become DNS
    /// labels).
    Label,
}

/// One kind's rules. Every method has the behaviour of a kind with no rules
/// of its own, so a kind overrides only what it needs.
pub trait Strategy: Send + Sync {
    /// The [`super::types`] name of the kind's OpenAPI root type
    /// (`core.Pod`), or None for a kind without a type tree (served free-form,
    /// no strict field check, only `metadata` lists merge).
    fn type_name(&self) -> Option<&'static str> {
        None
    }

    /// The field types this kind adds to [`super::types::SHARED`], in the
    /// same grammar: at least its root type. Shared sub-types (containers,
    /// pod specs, metadata) stay in the shared table.
    fn types(&self) -> &'static str {
        ""
    }

    /// How `metadata.name` must be spelt.
    fn name_rule(&self) -> NameRule {
        NameRule::Subdomain
    }

    /// Fills defaults on a new or updated object.
    fn default(&self, _obj: &mut Value) {}

    /// Validates an object (created, or the new version of an update): the
    /// checks every kind shares (see [`validate::object`]) plus the kind's own.
    fn validate(&self, obj: &Value) -> Errors {
        validate::object(obj, self.name_rule())
    }

    /// JSON pointers (`/spec/selector`) of fields an update may not change.
    fn immutable(&self) -> &'static [&'static str] {
        &[]
    }

    /// Validates an update from `old` to `new`: [`Strategy::validate`] of
    /// `new` plus the [`Strategy::immutable`] fields.
    fn validate_update(&self, old: &Value, new: &Value) -> Errors {
        let mut errors = self.validate(new);
        immutable_fields(self.immutable(), old, new, &mut errors);
        errors
    }

    /// What creating `obj` takes (and fills in: a Service's cluster IP and
    /// node ports). The claims hold `obj`'s [`super::claim::owner`].
    fn allocate(&self, _obj: &mut Value) -> Vec<Claim> {
        Vec::new()
    }

    /// What updating `old` into `new` takes and gives back (and keeps in
    /// `new`: allocated values the new version omits).
    ///
    /// # Errors
    /// Field errors when the update changes what may not change (a Service's
    /// cluster IP).
    fn reallocate(&self, _old: &Value, _new: &mut Value) -> Result<Vec<Claim>, Errors> {
        Ok(Vec::new())
    }

    /// What deleting `obj` gives back: only keys `obj` holds.
    fn release(&self, _obj: &Value) -> Vec<Claim> {
        Vec::new()
    }

    /// The columns of the kind's Table.
    fn columns(&self) -> &'static [Column] {
        print::DEFAULT_COLUMNS
    }

    /// One object as a Table row (one cell per [`Strategy::columns`] entry),
    /// at `now` (Unix seconds, for ages).
    fn row(&self, obj: &Value, now: i64) -> Row {
        print::default_row(obj, now)
    }
}

/// Records a "field is immutable" error for each of `pointers` whose value
/// differs between `old` and `new` (a field set on `old` and dropped from
/// `new` counts as changed).
pub fn immutable_fields(pointers: &[&str], old: &Value, new: &Value, errors: &mut Errors) {
    for pointer in pointers {
        let before = old.pointer(pointer).filter(|v| !v.is_null());
        let after = new.pointer(pointer).filter(|v| !v.is_null());
        if before.is_some() && before != after {
            let field = pointer.trim_start_matches('/').replace('/', ".");
            let shown = after.map_or_else(|| "null".to_owned(), Value::to_string);
            errors.invalid(field, format!("Invalid value: {shown}: field is immutable"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Selector;

    impl Strategy for Selector {
        fn immutable(&self) -> &'static [&'static str] {
            &["/spec/selector"]
        }
    }

    #[test]
    fn immutable_fields_are_checked_generically() {
        let old =
            json!({"metadata": {"name": "a"}, "spec": {"selector": {"app": "a"}, "replicas": 1}});
        let same =
            json!({"metadata": {"name": "a"}, "spec": {"selector": {"app": "a"}, "replicas": 3}});
        assert!(Selector.validate_update(&old, &same).is_empty());
        let changed = json!({"metadata": {"name": "a"}, "spec": {"selector": {"app": "b"}}});
        let errors = Selector.validate_update(&old, &changed);
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].field, "spec.selector");
        assert!(errors.0[0].message.ends_with("field is immutable"));
        let dropped = json!({"metadata": {"name": "a"}, "spec": {}});
        assert_eq!(Selector.validate_update(&old, &dropped).0.len(), 1);
        // Setting a field the old version lacked is not a change of it.
        let unset = json!({"metadata": {"name": "a"}, "spec": {}});
        assert!(Selector.validate_update(&unset, &changed).is_empty());
    }

    #[test]
    fn a_kind_without_rules_checks_only_metadata() {
        let errors = Selector.validate(&json!({"metadata": {"name": "Bad_Name"}}));
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].field, "metadata.name");
        let mut obj = json!({"metadata": {"name": "a"}});
        assert!(Selector.allocate(&mut obj).is_empty());
        assert!(Selector.release(&obj).is_empty());
        assert_eq!(Selector.columns().len(), 2);
        assert_eq!(Selector.row(&obj, 0).cells.len(), 2);
    }
}
