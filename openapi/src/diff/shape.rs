//! Schemas as the comparison sees them: by shape, after `$ref` resolution.
//!
//! * `unwrap` sees through wrappers that only add nullability: a one-element
//!   `allOf`/`oneOf`/`anyOf` (beside `nullable`, or with a `{type: null}`
//!   member) is its element, plus "may be null".
//! * `Flat` is one schema with its `allOf` members (and a lone `oneOf` or
//!   `anyOf` member) merged in, `null` split off into `nullable`, and the
//!   type implied by `properties`/`items` made explicit.
//! * `Shapes::equal` says whether two schemas accept the same values, names
//!   aside (a renamed component of the same shape is equal); recursion is
//!   handled coinductively (a pair met again while being compared is
//!   assumed equal), and results are cached.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::model::{ApiModel, JsonType, Schema, SchemaRef};

/// `allOf` merging depth, far beyond real documents.
const MAX_MERGE_DEPTH: usize = 16;

/// Structural comparison depth; past it two schemas count as different
/// (so they are compared field by field instead).
const MAX_EQUAL_DEPTH: usize = 96;

const NULL: &str = "null";

/// Whether a schema only stands for `null` (`{type: null}`, `{enum: [null]}`).
fn is_null_only(s: &Schema) -> bool {
    let only_null_type = !s.types.is_empty() && s.types.iter().all(|t| *t == JsonType::Null);
    let only_null_enum = s.enum_values.as_ref().is_some_and(|v| !v.is_empty() && v.iter().all(|v| v == NULL));
    (only_null_type || only_null_enum) && s.properties.is_empty() && s.items.is_none()
}

/// Whether a schema says anything itself, beyond composing others.
fn has_own_shape(s: &Schema) -> bool {
    s.types.iter().any(|t| *t != JsonType::Null)
        || s.format.is_some()
        || !s.properties.is_empty()
        || !s.required.is_empty()
        || s.enum_values.as_ref().is_some_and(|v| v.iter().any(|v| v != NULL))
        || s.items.is_some()
        || s.additional_properties.is_some()
        || s.discriminator.is_some()
}

/// A member that only says which fields are required (`{required: [id]}`).
fn is_constraint_only(s: &Schema) -> bool {
    !s.required.is_empty()
        && s.types.is_empty()
        && s.properties.is_empty()
        && s.enum_values.is_none()
        && s.items.is_none()
        && s.all_of.is_empty()
        && s.one_of.is_empty()
        && s.any_of.is_empty()
}

/// A member that is a list of scalar values (`{type: string, enum: [a]}`).
fn is_enum_only(s: &Schema) -> bool {
    s.enum_values.is_some()
        && s.properties.is_empty()
        && s.items.is_none()
        && s.all_of.is_empty()
        && s.one_of.is_empty()
        && s.any_of.is_empty()
}

/// Whether a schema itself allows `null`.
pub(crate) fn own_nullable(s: &Schema) -> bool {
    s.nullable || s.types.contains(&JsonType::Null) || s.enum_values.as_ref().is_some_and(|v| v.contains(NULL))
}

/// The schema a wrapper stands for, and whether a wrapper on the way
/// allowed `null`. The result is resolved (never a cut node).
pub(crate) fn unwrap<'m>(model: &'m ApiModel, schema: &'m SchemaRef) -> (&'m SchemaRef, bool) {
    let mut here = model.resolve(schema);
    let mut nullable = false;
    for _ in 0..MAX_MERGE_DEPTH {
        if has_own_shape(here) {
            break;
        }
        let members = here.all_of.iter().chain(&here.one_of).chain(&here.any_of);
        let mut non_null = members.clone().filter(|m| !is_null_only(model.resolve(m)));
        let (Some(only), None) = (non_null.next(), non_null.next()) else { break };
        nullable |= own_nullable(here) || members.clone().any(|m| is_null_only(model.resolve(m)));
        here = model.resolve(only);
    }
    (here, nullable)
}

/// A schema with its `allOf` members merged in.
pub(crate) struct Flat<'s> {
    /// Without `Null`; empty means any.
    pub types: BTreeSet<JsonType>,
    pub nullable: bool,
    pub format: Option<&'s str>,
    pub properties: BTreeMap<&'s String, &'s SchemaRef>,
    pub required: BTreeSet<&'s String>,
    /// Without `null`.
    pub enum_values: Option<BTreeSet<&'s String>>,
    pub items: Option<&'s SchemaRef>,
    pub additional: Option<&'s SchemaRef>,
    /// `oneOf` (or else `anyOf`) members that are not just `null`.
    pub variants: Vec<&'s SchemaRef>,
    /// Whether `variants` came from `oneOf` (exactly one must match).
    pub exclusive: bool,
    pub discriminator: Option<&'s String>,
    pub read_only: bool,
    pub write_only: bool,
    /// The schemas merged so far, by address: merging one again changes nothing, and a
    /// document whose `allOf`s share members (each of 17 levels listing the next 10 times)
    /// would otherwise be walked once per path, 10¹⁷ times.
    merged: HashSet<*const Schema>,
}

impl<'s> Flat<'s> {
    pub(crate) fn of(schema: &'s Schema, model: &'s ApiModel) -> Flat<'s> {
        let mut flat = Flat {
            types: BTreeSet::new(),
            nullable: false,
            format: None,
            properties: BTreeMap::new(),
            required: BTreeSet::new(),
            enum_values: None,
            items: None,
            additional: None,
            variants: Vec::new(),
            exclusive: false,
            discriminator: None,
            read_only: schema.read_only,
            write_only: schema.write_only,
            merged: HashSet::new(),
        };
        flat.merge(schema, model, 0);
        flat.types.remove(&JsonType::Null);
        if flat.types.is_empty() {
            if !flat.properties.is_empty() || flat.additional.is_some() {
                flat.types.insert(JsonType::Object);
            } else if flat.items.is_some() {
                flat.types.insert(JsonType::Array);
            }
        }
        flat
    }

    fn merge(&mut self, s: &'s Schema, model: &'s ApiModel, depth: usize) {
        if s.recursive || depth > MAX_MERGE_DEPTH || !self.merged.insert(std::ptr::from_ref(s)) {
            return;
        }
        self.nullable |= own_nullable(s);
        let types: BTreeSet<JsonType> = s.types.iter().copied().filter(|t| *t != JsonType::Null).collect();
        if !types.is_empty() {
            if self.types.is_empty() {
                self.types = types;
            } else {
                let both: BTreeSet<JsonType> = self.types.intersection(&types).copied().collect();
                if !both.is_empty() {
                    self.types = both;
                }
            }
        }
        self.format = self.format.or(s.format.as_deref());
        for (name, p) in &s.properties {
            self.properties.entry(name).or_insert(p);
        }
        self.required.extend(s.required.iter());
        if self.enum_values.is_none()
            && let Some(values) = &s.enum_values
        {
            self.enum_values = Some(values.iter().filter(|v| v.as_str() != NULL).collect());
        }
        self.items = self.items.or(s.items.as_ref());
        self.additional = self.additional.or(s.additional_properties.as_ref());
        self.discriminator = self.discriminator.or(s.discriminator.as_ref());
        for member in &s.all_of {
            self.merge(model.resolve(member), model, depth + 1);
        }
        for (exclusive, list) in [(true, &s.one_of), (false, &s.any_of)] {
            let members: Vec<&'s SchemaRef> = list.iter().filter(|m| !is_null_only(model.resolve(m))).collect();
            if members.len() < list.len() {
                self.nullable = true;
            }
            let resolved: Vec<&'s Schema> = members.iter().map(|m| model.resolve(m).as_ref()).collect();
            match members.as_slice() {
                [] => {}
                // One member is no choice: it is part of this schema.
                [only] => self.merge(model.resolve(only), model, depth + 1),
                // Members that only list required fields constrain this
                // schema: a field is always there if every member requires it.
                _ if resolved.iter().all(|m| is_constraint_only(m)) => {
                    let mut always: Option<BTreeSet<&'s String>> = None;
                    for m in &resolved {
                        let these: BTreeSet<&'s String> = m.required.iter().collect();
                        always = Some(match always {
                            None => these,
                            Some(before) => before.intersection(&these).copied().collect(),
                        });
                    }
                    self.required.extend(always.unwrap_or_default());
                }
                // A choice between lists of values is one list of values.
                _ if resolved.iter().all(|m| is_enum_only(m)) => {
                    let values: BTreeSet<&'s String> = resolved
                        .iter()
                        .flat_map(|m| m.enum_values.iter().flatten())
                        .filter(|v| v.as_str() != NULL)
                        .collect();
                    if self.enum_values.is_none() {
                        self.enum_values = Some(values);
                    }
                    if self.types.is_empty() {
                        self.types = resolved
                            .iter()
                            .flat_map(|m| m.types.iter().copied())
                            .filter(|t| *t != JsonType::Null)
                            .collect();
                    }
                }
                _ if self.variants.is_empty() => {
                    self.variants = members;
                    self.exclusive = exclusive;
                }
                _ => {}
            }
        }
    }
}

/// Whether a schema of types `wider` accepts every value of types
/// `narrower` (empty = any; an integer is a number).
pub(crate) fn accepts(wider: &BTreeSet<JsonType>, narrower: &BTreeSet<JsonType>) -> bool {
    if wider.is_empty() {
        return true;
    }
    !narrower.is_empty()
        && narrower.iter().all(|t| wider.contains(t) || (*t == JsonType::Integer && wider.contains(&JsonType::Number)))
}

/// Whether format `wider` accepts every value of format `narrower`.
pub(crate) fn format_accepts(wider: Option<&str>, narrower: Option<&str>) -> bool {
    match (wider, narrower) {
        (None, _) => true,
        (Some(w), Some(n)) => w == n || matches!((n, w), ("int32", "int64") | ("float", "double")),
        (Some(_), None) => false,
    }
}

pub(crate) fn show_types(types: &BTreeSet<JsonType>) -> String {
    if types.is_empty() {
        return "any".to_owned();
    }
    types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" or ")
}

/// How `null` counts in a comparison: each side with whether a wrapper
/// around it allowed `null`, or not at all (the top of a variant, whose
/// union judges `null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Nulls {
    Wrapped(bool, bool),
    Ignored,
}

type PairKey = (usize, usize, Nulls);

fn key(a: &SchemaRef, b: &SchemaRef, nulls: Nulls) -> PairKey {
    (Arc::as_ptr(a) as usize, Arc::as_ptr(b) as usize, nulls)
}

/// Structural equality between a schema of the old model and one of the new.
pub(crate) struct Shapes<'m> {
    old: &'m ApiModel,
    new: &'m ApiModel,
    /// Settled answers.
    known: HashMap<PairKey, bool>,
    /// Pairs assumed equal while the current question is open, and the
    /// order they were assumed in (a failed attempt drops what it assumed).
    assumed: HashSet<PairKey>,
    trail: Vec<PairKey>,
}

impl<'m> Shapes<'m> {
    pub(crate) fn new(old: &'m ApiModel, new: &'m ApiModel) -> Self {
        Shapes { old, new, known: HashMap::new(), assumed: HashSet::new(), trail: Vec::new() }
    }

    /// Whether `a` (old) and `b` (new) accept the same values, whatever
    /// their components are called; whether they allow `null` at the top
    /// does not count (the place holding them judges that).
    pub(crate) fn equal(&mut self, a: &'m SchemaRef, b: &'m SchemaRef) -> bool {
        self.settle(a, b, false)
    }

    fn settle(&mut self, a: &'m SchemaRef, b: &'m SchemaRef, with_null: bool) -> bool {
        let answer = self.equal_at(a, b, 0, with_null);
        // Assumptions hold if the whole question was answered yes; a no
        // cannot rest on them (assuming only ever says yes).
        for pair in self.trail.drain(..) {
            if answer {
                self.known.insert(pair, true);
            }
        }
        self.assumed.clear();
        answer
    }

    fn equal_at(&mut self, a: &'m SchemaRef, b: &'m SchemaRef, depth: usize, with_null: bool) -> bool {
        let (a, a_null) = unwrap(self.old, a);
        let (b, b_null) = unwrap(self.new, b);
        let nulls = if with_null { Nulls::Wrapped(a_null, b_null) } else { Nulls::Ignored };
        let pair = key(a, b, nulls);
        if let Some(&known) = self.known.get(&pair) {
            return known;
        }
        if self.assumed.contains(&pair) {
            return true;
        }
        if depth > MAX_EQUAL_DEPTH {
            return false;
        }
        let mark = self.trail.len();
        self.assumed.insert(pair);
        self.trail.push(pair);
        let answer = self.same_flat(a, b, nulls, depth);
        if !answer {
            // What this attempt assumed may only have held because of this pair.
            for dropped in self.trail.drain(mark..) {
                self.assumed.remove(&dropped);
            }
            self.known.insert(pair, false);
        }
        answer
    }

    fn same_flat(&mut self, a: &'m SchemaRef, b: &'m SchemaRef, nulls: Nulls, depth: usize) -> bool {
        let (old, new) = (self.old, self.new);
        let fa = Flat::of(a, old);
        let fb = Flat::of(b, new);
        let same_null = match nulls {
            Nulls::Wrapped(a_null, b_null) => (a_null || fa.nullable) == (b_null || fb.nullable),
            Nulls::Ignored => true,
        };
        let shallow = fa.types == fb.types
            && same_null
            && fa.format == fb.format
            && fa.required == fb.required
            && fa.enum_values == fb.enum_values
            && fa.discriminator == fb.discriminator
            && fa.read_only == fb.read_only
            && fa.write_only == fb.write_only
            && fa.exclusive == fb.exclusive
            && fa.items.is_some() == fb.items.is_some()
            && fa.additional.is_some() == fb.additional.is_some()
            && fa.variants.len() == fb.variants.len()
            && fa.properties.len() == fb.properties.len()
            && fa.properties.keys().eq(fb.properties.keys());
        if !shallow {
            return false;
        }
        for (pa, pb) in fa.properties.values().zip(fb.properties.values()) {
            if !self.equal_at(pa, pb, depth + 1, true) {
                return false;
            }
        }
        for (ca, cb) in [(fa.items, fb.items), (fa.additional, fb.additional)] {
            if let (Some(ca), Some(cb)) = (ca, cb)
                && !self.equal_at(ca, cb, depth + 1, true)
            {
                return false;
            }
        }
        // Variants are a set: each old one needs its own equal new one.
        let mut taken = vec![false; fb.variants.len()];
        for va in &fa.variants {
            let found =
                (0..fb.variants.len()).find(|&j| !taken[j] && self.equal_at(va, fb.variants[j], depth + 1, false));
            match found {
                Some(j) => taken[j] = true,
                None => return false,
            }
        }
        true
    }
}

/// Nodes one `covers` question may visit before it answers no.
const COVER_BUDGET: usize = 20_000;

/// Nesting `covers` follows before it answers no.
const MAX_COVER_DEPTH: usize = 24;

impl<'m> Shapes<'m> {
    /// Whether every value `narrow` (old) accepts is also accepted by `wide`
    /// (new) — or, with `reversed`, `wide` is old and `narrow` new. It answers
    /// no when unsure, so a change it does not see through stays reported.
    pub(crate) fn covers(&mut self, wide: &'m SchemaRef, narrow: &'m SchemaRef, reversed: bool) -> bool {
        let mut budget = COVER_BUDGET;
        let (wide_model, narrow_model) = if reversed { (self.old, self.new) } else { (self.new, self.old) };
        covers_at(wide_model, wide, narrow_model, narrow, 0, &mut budget)
    }
}

fn covers_at(
    wm: &ApiModel,
    wide: &SchemaRef,
    nm: &ApiModel,
    narrow: &SchemaRef,
    depth: usize,
    budget: &mut usize,
) -> bool {
    if depth > MAX_COVER_DEPTH || *budget == 0 {
        return false;
    }
    *budget -= 1;
    let (w, w_null) = unwrap(wm, wide);
    let (n, n_null) = unwrap(nm, narrow);
    if Arc::ptr_eq(w, n) {
        return true;
    }
    let (fw, fnw) = (Flat::of(w, wm), Flat::of(n, nm));
    if (n_null || fnw.nullable) && !(w_null || fw.nullable) {
        return false;
    }
    if !fnw.variants.is_empty() {
        return fnw.variants.iter().all(|v| covers_at(wm, wide, nm, v, depth + 1, budget));
    }
    if !fw.variants.is_empty() {
        return fw.variants.iter().any(|v| covers_at(wm, v, nm, narrow, depth + 1, budget));
    }
    if !accepts(&fw.types, &fnw.types) || !format_accepts(fw.format, fnw.format) {
        return false;
    }
    if let Some(allowed) = &fw.enum_values {
        match &fnw.enum_values {
            Some(values) if values.is_subset(allowed) => {}
            _ => return false,
        }
    }
    if !fw.required.is_subset(&fnw.required) {
        return false;
    }
    // Fields one side describes and the other does not follow the field
    // rules (an added optional request field or response field breaks
    // nobody), but two objects with no field in common are different
    // variants, not one that covers the other.
    let shares_a_field = fnw.properties.keys().any(|name| fw.properties.contains_key(name));
    if !fw.properties.is_empty() && !fnw.properties.is_empty() && !shares_a_field {
        return false;
    }
    for (name, wp) in &fw.properties {
        if let Some(np) = fnw.properties.get(name)
            && !covers_at(wm, wp, nm, np, depth + 1, budget)
        {
            return false;
        }
    }
    match (fw.items, fnw.items) {
        (Some(wi), Some(ni)) => covers_at(wm, wi, nm, ni, depth + 1, budget),
        (Some(_), None) => false,
        _ => true,
    }
}
