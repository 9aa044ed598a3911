//! `groups create|update|list|delete`: named budgets that several tokens share (a team, a
//! project). A token joins one with `tokens create|update --group NAME`; its own budgets and its
//! group's both apply.

use std::io::Write;

use anyhow::bail;
use chrono::Utc;
use serde_json::json;

use super::budget_args::{BudgetClear, BudgetSet};
use crate::budget::parse_group;
use crate::store::{BudgetStore, GroupDelete, StoreError};

/// `groups` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum GroupsCommand {
    /// Create a group with its budgets.
    Create {
        /// Name: 1 to 64 of a-z, 0-9, '.', '_', '-'.
        #[arg(value_parser = parse_group)]
        name: String,
        /// Budgets.
        #[command(flatten)]
        set: BudgetSet,
    },
    /// Change a group's budgets; only the options given are written.
    Update {
        /// The group's name.
        #[arg(value_parser = parse_group)]
        name: String,
        /// Budgets to set.
        #[command(flatten)]
        set: BudgetSet,
        /// Budgets to remove.
        #[command(flatten)]
        clear: BudgetClear,
    },
    /// List groups with their budgets and member counts.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Delete a group no token belongs to.
    Delete {
        /// The group's name.
        name: String,
    },
}

/// Runs one `groups` subcommand.
pub async fn run(
    store: &dyn BudgetStore,
    command: GroupsCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match command {
        GroupsCommand::Create { name, set } => {
            let budgets = set.patch().apply(Default::default());
            let now = crate::expiry::format_timestamp(Utc::now());
            match store.create_group(&name, &budgets, &now).await {
                Err(StoreError::Duplicate) => bail!("a group named {name:?} exists already"),
                other => other?,
            }
            writeln!(out, "created group {name}: {budgets}")?;
        }
        GroupsCommand::Update { name, set, clear } => {
            let patch = set.patch_with(&clear);
            if patch.is_empty() {
                bail!("nothing to update: name at least one budget (see `groups update --help`)");
            }
            if !store.update_group(&name, &patch).await? {
                bail!("no group named {name:?}");
            }
            let groups = store.groups().await?;
            let budgets = groups.iter().find(|g| g.name == name).map(|g| g.budgets);
            writeln!(out, "updated group {name}: {}", budgets.unwrap_or_default())?;
        }
        GroupsCommand::List { json } => {
            let groups = store.groups().await?;
            if json {
                let all: Vec<_> = groups
                    .iter()
                    .map(|g| {
                        json!({"name": g.name, "budgets": g.budgets, "members": g.members,
                               "created_at": g.created_at})
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
            } else if groups.is_empty() {
                writeln!(out, "no groups")?;
            } else {
                for g in groups {
                    writeln!(out, "{}\t{} tokens\t{}", g.name, g.members, g.budgets)?;
                }
            }
        }
        GroupsCommand::Delete { name } => match store.delete_group(&name).await? {
            GroupDelete::Deleted => writeln!(out, "deleted group {name}")?,
            GroupDelete::NotFound => bail!("no group named {name:?}"),
            GroupDelete::HasMembers(n) => bail!(
                "{n} token(s) belong to group {name:?}: move them out first \
                 (`tokens update TOKEN --no-group`); deleting it would lift their budget"
            ),
        },
    }
    Ok(())
}
