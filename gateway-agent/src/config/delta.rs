//! Previous config + [`Delta`] → next config, copying only what changed.
//!
//! The result is checked against the same rules as [`tollgate_protocol::Snapshot::validate`]
//! (which would need the whole snapshot in its wire form): APIs and plans are re-validated
//! as a whole when one of them changes (they are small), changed applications and
//! credentials are checked one by one, and removals are checked for dangling references.
//! Referential integrity is required after the last change, not in between, so changes are
//! gathered first and resolved together.

use std::collections::HashMap;
use std::sync::Arc;

use tollgate_protocol::{Application, Change, Credential, Delta, ValidationError};
use uuid::Uuid;

use super::compile::{app_entry, build_catalog, credential_entry};
use super::model::{Config, ConfigError};

pub(crate) fn apply_delta(base: &Config, delta: Delta) -> Result<Config, ConfigError> {
    if delta.base_revision != base.revision || delta.revision <= delta.base_revision {
        return Err(ValidationError::new(
            "revision",
            format!("delta {} → {} does not apply to revision {}", delta.base_revision, delta.revision, base.revision),
        )
        .into());
    }
    let mut apis = None;
    let mut plans = None;
    let mut routing: Option<Vec<tollgate_protocol::Routing>> = None;
    let mut mocks: Option<Vec<tollgate_protocol::ApiMocks>> = None;
    let mut app_changes: Vec<(usize, Uuid, Option<Application>)> = Vec::new();
    let mut credential_changes: Vec<(usize, [u8; 32], Option<Credential>)> = Vec::new();
    let mut plan_removed = false;
    for (i, change) in delta.changes.into_iter().enumerate() {
        match change {
            Change::UpsertApi(api) => {
                let apis = apis.get_or_insert_with(|| base.catalog.source_apis.clone());
                match apis.iter_mut().find(|a| a.id == api.id) {
                    Some(slot) => *slot = api,
                    None => apis.push(api),
                }
            }
            Change::RemoveApi { id } => {
                apis.get_or_insert_with(|| base.catalog.source_apis.clone()).retain(|a| a.id != id);
                routing.get_or_insert_with(|| base.catalog.source_routing.clone()).retain(|r| r.api_id != id);
                mocks.get_or_insert_with(|| base.catalog.source_mocks.clone()).retain(|m| m.api_id != id);
            }
            Change::UpsertRouting(entry) => {
                let routing = routing.get_or_insert_with(|| base.catalog.source_routing.clone());
                match routing.iter_mut().find(|r| r.api_id == entry.api_id) {
                    Some(slot) => *slot = entry,
                    None => routing.push(entry),
                }
            }
            Change::RemoveRouting { api_id } => {
                routing.get_or_insert_with(|| base.catalog.source_routing.clone()).retain(|r| r.api_id != api_id);
            }
            Change::UpsertMocks(api_mocks) => {
                let mocks = mocks.get_or_insert_with(|| base.catalog.source_mocks.clone());
                match mocks.iter_mut().find(|m| m.api_id == api_mocks.api_id) {
                    Some(slot) => *slot = api_mocks,
                    None => mocks.push(api_mocks),
                }
            }
            Change::RemoveMocks { api_id } => {
                mocks.get_or_insert_with(|| base.catalog.source_mocks.clone()).retain(|m| m.api_id != api_id);
            }
            Change::UpsertPlan(plan) => {
                let plans = plans.get_or_insert_with(|| base.catalog.source_plans.clone());
                match plans.iter_mut().flatten().find(|p| p.id == plan.id) {
                    Some(slot) => *slot = plan,
                    None => plans.push(Some(plan)),
                }
            }
            Change::RemovePlan { id } => {
                let plans = plans.get_or_insert_with(|| base.catalog.source_plans.clone());
                for slot in plans.iter_mut() {
                    if slot.as_ref().is_some_and(|p| p.id == id) {
                        *slot = None;
                        plan_removed = true;
                    }
                }
            }
            Change::UpsertApplication(app) => app_changes.push((i, app.id, Some(app))),
            Change::RemoveApplication { id } => app_changes.push((i, id, None)),
            Change::UpsertCredential(credential) => credential_changes.push((i, credential.hash.0, Some(credential))),
            Change::RevokeCredential { hash } => credential_changes.push((i, hash.0, None)),
        }
    }

    let catalog = if apis.is_some() || plans.is_some() || routing.is_some() || mocks.is_some() {
        let apis = apis.unwrap_or_else(|| base.catalog.source_apis.clone());
        let plans = plans.unwrap_or_else(|| base.catalog.source_plans.clone());
        let routing = routing.unwrap_or_else(|| base.catalog.source_routing.clone());
        let mocks = mocks.unwrap_or_else(|| base.catalog.source_mocks.clone());
        Arc::new(build_catalog(apis, plans, routing, mocks)?)
    } else {
        base.catalog.clone()
    };

    // Applications: only the last change per id counts.
    let last_app_change: HashMap<Uuid, usize> = app_changes.iter().map(|(i, id, _)| (*id, *i)).collect();
    app_changes.retain(|(i, id, _)| last_app_change.get(id) == Some(i));
    let mut apps = base.apps.clone();
    let mut app_removed = false;
    // First release every changed application's app_id, so two applications may swap them.
    for (_, id, change) in &app_changes {
        let Some(&slot) = apps.by_id.get(id) else {
            continue;
        };
        if let Some(app_id) = apps.get(slot).and_then(|app| app.app_id.clone()) {
            apps.by_app_id.remove(&app_id);
        }
        if change.is_none() {
            apps.by_id.remove(id);
            apps.slots.set(slot as usize, None);
            app_removed = true;
        }
    }
    for (i, id, change) in app_changes {
        let Some(app) = change else {
            continue;
        };
        let at = |field: &str| format!("changes[{i}].{field}");
        let entry = app_entry(app, &catalog).map_err(|(field, message)| ValidationError::new(at(field), message))?;
        let slot = match apps.by_id.get(&id) {
            Some(&slot) => {
                apps.slots.set(slot as usize, Some(entry.clone()));
                slot
            }
            None => {
                let slot = u32::try_from(apps.slots.push(Some(entry.clone())))
                    .map_err(|_| ConfigError::Compile("too many applications".into()))?;
                apps.by_id.insert(id, slot);
                slot
            }
        };
        if let Some(app_id) = entry.app_id
            && apps.by_app_id.insert(app_id.clone(), slot).is_some()
        {
            return Err(ValidationError::new(at("app_id"), format!("duplicate app_id {app_id}")).into());
        }
    }

    let last_credential_change: HashMap<[u8; 32], usize> =
        credential_changes.iter().map(|(i, hash, _)| (*hash, *i)).collect();
    let mut credentials = base.credentials.clone();
    for (i, hash, change) in credential_changes {
        if last_credential_change.get(&hash) != Some(&i) {
            continue;
        }
        match change {
            None => {
                credentials.remove(&hash);
            }
            Some(credential) => {
                let app = apps.by_id.get(&credential.application_id).copied();
                let entry = credential_entry(&credential, app)
                    .map_err(|(field, message)| ValidationError::new(format!("changes[{i}].{field}"), message))?;
                credentials.insert(hash, entry);
            }
        }
    }

    // Removals must not leave references behind. A linear scan, but only on the rare
    // deltas that remove a plan or an application.
    if plan_removed {
        for app in apps.slots.iter().flatten() {
            if catalog.plan(app.plan).is_none() {
                return Err(
                    ValidationError::new("changes", format!("application {} is on a removed plan", app.id)).into()
                );
            }
        }
    }
    if app_removed {
        // A removed application's keys go with it (a rejected application that had keys is
        // removed from the agents' view with no change to its keys): refusing the delta would
        // refuse every later one built on it too.
        let orphans: Vec<[u8; 32]> =
            credentials.iter().filter(|(_, entry)| apps.get(entry.app).is_none()).map(|(hash, _)| *hash).collect();
        for hash in orphans {
            credentials.remove(&hash);
        }
    }

    Ok(Config { revision: delta.revision, generated_at: base.generated_at, catalog, apps, credentials })
}
