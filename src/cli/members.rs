//! `ctl token ...`, `ctl member ...` and `ctl cluster ...`.

use super::{Cli, ClusterCommand, MemberCommand, Output, TokenCommand};
use crate::client::Client;
use crate::security::tokens::{unix_now, TokenRecord};
use crate::wire::{LocalStatus, MemberView, RemoveReply, RemoveRequest, TokenCreate, TokenCreated};
use serde::Serialize;
use std::time::Duration;

/// Runs a `ctl token` command.
///
/// # Errors
/// When the cluster cannot be reached or refuses.
pub async fn token(client: &Client, command: &TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { role, ttl } => {
            let created: TokenCreated = client
                .post(
                    "/cluster/tokens",
                    &TokenCreate {
                        role: *role,
                        ttl_seconds: ttl.as_secs().max(1),
                    },
                )
                .await?;
            println!("{}", created.token);
        }
        TokenCommand::List { output } => {
            let records: Vec<TokenRecord> = client.get("/cluster/tokens").await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&records)?),
                Output::Table => {
                    println!("{:<8} {:<8} {:<10} EXPIRES", "ID", "ROLE", "STATUS");
                    let now = unix_now();
                    for r in records {
                        let status = if r.revoked {
                            "revoked"
                        } else if now >= r.expires {
                            "expired"
                        } else {
                            "valid"
                        };
                        let left = r.expires.saturating_sub(now);
                        println!(
                            "{:<8} {:<8} {:<10} in {}",
                            r.id,
                            r.role,
                            status,
                            humantime::format_duration(Duration::from_secs(left))
                        );
                    }
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let record: TokenRecord = client
                .post(&format!("/cluster/tokens/{id}/revoke"), &())
                .await?;
            println!("token {} revoked", record.id);
        }
    }
    Ok(())
}

/// Runs a `ctl member` command.
///
/// # Errors
/// When the cluster cannot be reached or refuses.
pub async fn member(client: &Client, command: &MemberCommand) -> anyhow::Result<()> {
    match command {
        MemberCommand::List { output } => {
            let members: Vec<MemberView> = client.get("/cluster/members").await?;
            client.learn_members().await;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&members)?),
                Output::Table => {
                    println!(
                        "{:<18} {:<16} {:<22} {:<8} LEADER",
                        "ID", "NAME", "ADDRESS", "ROLE"
                    );
                    for m in members {
                        println!(
                            "{:<18} {:<16} {:<22} {:<8} {}",
                            m.id,
                            m.name,
                            m.address,
                            m.role,
                            if m.leader { "*" } else { "" }
                        );
                    }
                }
            }
        }
        MemberCommand::Remove { name } => {
            let reply: RemoveReply = client
                .post(
                    "/cluster/members/remove",
                    &RemoveRequest { name: name.clone() },
                )
                .await?;
            println!("member {name} removed; {} voters remain", reply.voters);
            if let Some(warning) = reply.warning {
                eprintln!("warning: {warning}");
            }
        }
    }
    Ok(())
}

/// One member in `ctl cluster status -o json`.
#[derive(Serialize)]
struct MemberStatus {
    #[serde(flatten)]
    member: MemberView,
    healthy: bool,
    applied_index: Option<u64>,
    term: Option<u64>,
    state: Option<String>,
    error: Option<String>,
}

/// `ctl cluster status -o json`.
#[derive(Serialize)]
struct ClusterStatus {
    leader: Option<MemberView>,
    term: u64,
    members: Vec<MemberStatus>,
}

/// Runs a `ctl cluster` command.
///
/// # Errors
/// When the cluster cannot be reached or refuses.
pub async fn cluster(client: &Client, command: &ClusterCommand, cli: &Cli) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Snapshot => {
            let reply: serde_json::Value = client
                .json(
                    reqwest::Method::POST,
                    "/cluster/snapshot",
                    Some(&()),
                    crate::client::Route::Any,
                )
                .await?;
            println!("{reply}");
        }
        ClusterCommand::Status { output } => {
            let members: Vec<MemberView> = client.get("/cluster/members").await?;
            client.learn_members().await;
            let selection = super::selected(cli)?;
            let (token, ca_pem) = (selection.token, selection.ca_pem);
            // Ask every member about itself, concurrently, each with a short timeout.
            let probes = members.iter().map(|m| {
                let token = token.clone();
                let ca_pem = ca_pem.clone();
                let address = m.address.clone();
                async move {
                    let probe = Client::new(&[address], token, ca_pem.as_deref(), None)?;
                    let local: LocalStatus = tokio::time::timeout(
                        Duration::from_secs(3),
                        probe.json(
                            reqwest::Method::GET,
                            "/cluster/local",
                            None::<&()>,
                            crate::client::Route::Any,
                        ),
                    )
                    .await
                    .map_err(|_| anyhow::anyhow!("timed out"))??;
                    anyhow::Ok(local)
                }
            });
            let locals = futures::future::join_all(probes).await;
            let mut statuses = Vec::new();
            for (member, local) in members.iter().cloned().zip(locals) {
                statuses.push(match local {
                    Ok(l) => MemberStatus {
                        member,
                        healthy: true,
                        applied_index: Some(l.applied_index),
                        term: Some(l.term),
                        state: Some(l.state),
                        error: None,
                    },
                    Err(e) => MemberStatus {
                        member,
                        healthy: false,
                        applied_index: None,
                        term: None,
                        state: None,
                        error: Some(e.to_string()),
                    },
                });
            }
            let status = ClusterStatus {
                leader: members.iter().find(|m| m.leader).cloned(),
                term: statuses.iter().filter_map(|s| s.term).max().unwrap_or(0),
                members: statuses,
            };
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&status)?),
                Output::Table => {
                    println!(
                        "leader: {}   term: {}",
                        status
                            .leader
                            .as_ref()
                            .map(|l| l.name.as_str())
                            .unwrap_or("(none)"),
                        status.term
                    );
                    println!(
                        "{:<16} {:<22} {:<8} {:<10} {:<8} {:<10} APPLIED",
                        "NAME", "ADDRESS", "ROLE", "STATE", "HEALTHY", "TERM"
                    );
                    for s in &status.members {
                        println!(
                            "{:<16} {:<22} {:<8} {:<10} {:<8} {:<10} {}",
                            s.member.name,
                            s.member.address,
                            s.member.role,
                            s.state.as_deref().unwrap_or("-"),
                            if s.healthy { "yes" } else { "no" },
                            s.term.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
                            s.applied_index
                                .map(|a| a.to_string())
                                .unwrap_or_else(|| s.error.clone().unwrap_or_default())
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
