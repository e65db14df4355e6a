//! `ctl kv ...`: the raw store, for debugging.

use super::Output;
use crate::client::{self, Client, Route};
use crate::wire::{DeleteBody, DeleteReply, GetReply, PutBody, PutReply, RangeReply, WatchEvent};
use clap::{Subcommand, ValueEnum};
use futures::StreamExt;
use reqwest::Method;

/// Read consistency.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Sees every write acknowledged before the read began.
    #[default]
    Linearizable,
    /// The answering member's local state; may be stale.
    Serializable,
}

impl Consistency {
    fn as_str(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Serializable => "serializable",
        }
    }
}

/// `ctl kv ...`
#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// Print a key's value (with -o json: revisions, version and the member that answered).
    Get {
        /// The key.
        key: String,
        /// Read consistency.
        #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
        consistency: Consistency,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Set a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Delete a key.
    Del {
        /// The key (or prefix with --prefix).
        key: String,
        /// Delete every key starting with KEY.
        #[arg(long)]
        prefix: bool,
    },
    /// List keys under a prefix.
    Range {
        /// The prefix.
        prefix: String,
        /// At most this many keys.
        #[arg(long, default_value_t = 0)]
        limit: usize,
        /// Read consistency.
        #[arg(long, value_enum, default_value_t = Consistency::Linearizable)]
        consistency: Consistency,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Print changes under a prefix as JSON lines, until interrupted.
    Watch {
        /// The prefix.
        prefix: String,
        /// Replay changes after this revision first.
        #[arg(long)]
        from: Option<i64>,
    },
}

pub use crate::client::encode;

/// Runs a `ctl kv` command.
///
/// # Errors
/// When the cluster cannot be reached or refuses the request.
pub async fn run(client: &Client, command: &KvCommand) -> anyhow::Result<()> {
    match command {
        KvCommand::Get {
            key,
            consistency,
            output,
        } => {
            let reply: GetReply = client
                .get(&format!(
                    "/kv/get?key={}&consistency={}",
                    encode(key),
                    consistency.as_str()
                ))
                .await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&reply)?),
                Output::Table => match reply.kv {
                    Some(kv) => println!("{}", kv.value),
                    None => anyhow::bail!("key {key:?} not found"),
                },
            }
        }
        KvCommand::Put { key, value } => {
            let reply: PutReply = client
                .post(
                    "/kv/put",
                    &PutBody {
                        key: key.clone(),
                        value: value.clone(),
                        prev_kv: false,
                    },
                )
                .await?;
            println!("OK (revision {})", reply.revision);
        }
        KvCommand::Del { key, prefix } => {
            let reply: DeleteReply = client
                .post(
                    "/kv/delete",
                    &DeleteBody {
                        key: key.clone(),
                        prefix: *prefix,
                    },
                )
                .await?;
            println!("{} deleted (revision {})", reply.deleted, reply.revision);
        }
        KvCommand::Range {
            prefix,
            limit,
            consistency,
            output,
        } => {
            let reply: RangeReply = client
                .get(&format!(
                    "/kv/range?prefix={}&limit={limit}&consistency={}",
                    encode(prefix),
                    consistency.as_str()
                ))
                .await?;
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&reply)?),
                Output::Table => {
                    for kv in &reply.kvs {
                        println!("{}\t{}", kv.key, kv.value);
                    }
                    if reply.more {
                        eprintln!("({} of {} keys shown)", reply.kvs.len(), reply.count);
                    }
                }
            }
        }
        KvCommand::Watch { prefix, from } => {
            let mut path = format!("/kv/watch?prefix={}", encode(prefix));
            if let Some(from) = from {
                path.push_str(&format!("&from={from}"));
            }
            let response = client
                .send(
                    Method::GET,
                    &path,
                    None,
                    Route::Any,
                    client::DEFAULT_DEADLINE,
                )
                .await?;
            if !response.status().is_success() {
                let code = response.status().as_u16();
                anyhow::bail!("{} (HTTP {code})", client::error_message(response).await);
            }
            let mut stream = response.bytes_stream();
            let mut pending = Vec::new();
            while let Some(chunk) = stream.next().await {
                pending.extend_from_slice(&chunk?);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let event: WatchEvent = serde_json::from_slice(&line)?;
                    println!("{}", serde_json::to_string(&event)?);
                }
            }
        }
    }
    Ok(())
}
