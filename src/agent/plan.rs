//! A pod's lifecycle as a pure plan: given the pod, the containers the
//! runtime holds for it, what the worker remembers (back-offs, waiting
//! reasons), the liveness verdicts and the time, [`plan`] says what to do
//! next as a list of [`Step`]s. [`super::pods`] executes them against the
//! runtime and logs every step that fails.
//!
//! The rules (the kubelet's):
//! - no running sandbox: stop the app containers at once (a dead sandbox
//!   takes its containers with it), remove the dead sandboxes and run a new
//!   one — nothing else until it runs;
//! - a spec container that never ran starts (attempt 0); one created but
//!   never started (the agent died in between) is started;
//! - a running container is probed; a failed liveness probe kills it;
//! - an exited container restarts when the restart policy says so — at once
//!   the first time, then after an exponential back-off (10 s doubling to
//!   5 min, shown as CrashLoopBackOff); a run of [`BACKOFF_RESET`] or more
//!   resets the back-off;
//! - an image whose pull failed is not pulled again before its back-off
//!   ends (ImagePullBackOff, keeping the pull's error in view);
//! - all but the last two runs of each container are removed, and
//!   containers the spec no longer has are stopped and removed.

use super::runtime::{Container, State};
use crate::objects::pod;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// First restart back-off after the immediate first restart.
pub const BACKOFF_START: Duration = Duration::from_secs(10);
/// Longest back-off.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long resets its back-off.
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How long a container the spec no longer has gets to stop.
pub const DISCARD_GRACE: Duration = Duration::from_secs(2);

/// Exponential back-off of one container (or image).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Failures so far.
    pub failures: u32,
    /// No new attempt before this.
    pub until: Instant,
}

impl Backoff {
    /// The back-off after `failures` failures: 10 s doubling to 5 min.
    pub fn after(failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        BACKOFF_START
            .saturating_mul(1u32 << doublings)
            .min(BACKOFF_MAX)
    }
}

/// Whether a container that exited with `code` runs again under `policy`.
pub fn should_restart(policy: &str, code: i64) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// What a pod worker remembers between syncs.
#[derive(Debug, Default)]
pub struct Memory {
    /// Restart back-off per container name.
    pub restarts: HashMap<String, Backoff>,
    /// Pull back-off per container name.
    pub pulls: HashMap<String, Backoff>,
    /// The last pull error per container name (shown during ImagePullBackOff).
    pub pull_errors: HashMap<String, String>,
    /// Why each container waits: (reason, message).
    pub waiting: HashMap<String, (String, String)>,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Stop app container `id` at once (its sandbox is gone).
    StopAtOnce {
        /// Container id.
        id: String,
    },
    /// Remove container or sandbox `id`.
    Remove {
        /// Container id.
        id: String,
    },
    /// Run a new sandbox; the pod's containers wait for it.
    RunSandbox,
    /// Start container `id`, created but never started; remove it if that fails.
    StartCreated {
        /// Container name.
        name: String,
        /// Container id.
        id: String,
    },
    /// Make sure the probes of running container `id` run.
    Probe {
        /// Container name.
        name: String,
        /// Container id.
        id: String,
    },
    /// Its liveness probe failed: stop `id` within `grace`, forget its results.
    Kill {
        /// Container name.
        name: String,
        /// Container id.
        id: String,
        /// The pod's termination grace period.
        grace: Duration,
    },
    /// Stop probing container `id`, which exited.
    StopProbes {
        /// Container id.
        id: String,
    },
    /// Remember `backoff` as the restart back-off of `name`.
    RestartBackoff {
        /// Container name.
        name: String,
        /// The new back-off.
        backoff: Backoff,
    },
    /// Pull (per policy), create and start run `attempt` of container `name`.
    Start {
        /// Container name.
        name: String,
        /// The run's attempt number.
        attempt: u32,
    },
    /// Show container `name` waiting.
    Waiting {
        /// Container name.
        name: String,
        /// Kubernetes' reason (`CrashLoopBackOff`...).
        reason: String,
        /// The message.
        message: String,
    },
    /// Container `name` no longer waits.
    NotWaiting {
        /// Container name.
        name: String,
    },
    /// Stop (within [`DISCARD_GRACE`]) and remove a container the spec no
    /// longer has.
    Discard {
        /// Container id.
        id: String,
    },
}

/// The plan of one sync.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// What to do, in order.
    pub steps: Vec<Step>,
    /// When to look again at the latest (a back-off ends), if sooner than a
    /// resync.
    pub wake: Option<Duration>,
}

impl Plan {
    fn soon(&mut self, after: Duration) {
        self.wake = Some(self.wake.map_or(after, |w| w.min(after)));
    }

    fn push(&mut self, step: Step) {
        self.steps.push(step);
    }
}

/// The pod's running sandbox, if it has one (the latest attempt).
pub fn running_sandbox(containers: &[Container]) -> Option<&Container> {
    containers
        .iter()
        .filter(|c| c.name.is_none() && matches!(c.state, State::Running { .. }))
        .max_by_key(|c| c.attempt)
}

/// What to do for `pod` (`pod_name` for messages: `name_namespace(uid)`),
/// whose runtime containers are `containers`, given `memory`, the liveness
/// verdict of each container id, at `now`.
pub fn plan(
    pod: &Value,
    pod_name: &str,
    containers: &[Container],
    memory: &Memory,
    liveness: impl Fn(&str) -> Option<bool>,
    now: Instant,
) -> Plan {
    let mut plan = Plan::default();
    let spec = &pod["spec"];
    if running_sandbox(containers).is_none() {
        for c in containers.iter().filter(|c| c.name.is_some()) {
            if matches!(c.state, State::Running { .. }) {
                plan.push(Step::StopAtOnce { id: c.id.clone() });
            }
        }
        for c in containers.iter().filter(|c| c.name.is_none()) {
            plan.push(Step::Remove { id: c.id.clone() });
        }
        plan.push(Step::RunSandbox);
        return plan;
    }
    let policy = spec["restartPolicy"].as_str().unwrap_or("Always");
    let grace = Duration::from_secs(spec["terminationGracePeriodSeconds"].as_u64().unwrap_or(30));
    let mut by_name: HashMap<&str, Vec<&Container>> = HashMap::new();
    for c in containers {
        if let Some(name) = c.name.as_deref() {
            by_name.entry(name).or_default().push(c);
        }
    }
    for runs in by_name.values_mut() {
        runs.sort_by_key(|c| c.attempt);
    }
    let specs = pod::list(spec, "containers");
    for c in specs {
        let name = c["name"].as_str().unwrap_or("").to_owned();
        let runs = by_name.get(name.as_str()).cloned().unwrap_or_default();
        let latest = runs.last().copied();
        let start = match latest {
            None => Some(0),
            Some(l) => match &l.state {
                State::Created => {
                    plan.push(Step::StartCreated {
                        name: name.clone(),
                        id: l.id.clone(),
                    });
                    None
                }
                State::Running { .. } => {
                    plan.push(Step::NotWaiting { name: name.clone() });
                    plan.push(Step::Probe {
                        name: name.clone(),
                        id: l.id.clone(),
                    });
                    if liveness(&l.id) == Some(false) {
                        plan.push(Step::Kill {
                            name: name.clone(),
                            id: l.id.clone(),
                            grace,
                        });
                        plan.soon(Duration::ZERO);
                    }
                    None
                }
                State::Exited {
                    code,
                    started_at,
                    finished_at,
                    ..
                } => {
                    plan.push(Step::StopProbes { id: l.id.clone() });
                    if should_restart(policy, *code) {
                        let ran = started_at
                            .and_then(|s| finished_at.duration_since(s).ok())
                            .unwrap_or_default();
                        restart(&mut plan, memory, &name, pod_name, l.attempt, ran, now)
                    } else {
                        plan.push(Step::NotWaiting { name: name.clone() });
                        None
                    }
                }
            },
        };
        if let Some(attempt) = start {
            start_or_wait(&mut plan, memory, c, &name, attempt, now);
        }
        // Keep the last two runs of each container.
        if runs.len() > 2 {
            for old in &runs[..runs.len() - 2] {
                plan.push(Step::Remove { id: old.id.clone() });
            }
        }
    }
    let wanted: Vec<&str> = specs.iter().filter_map(|c| c["name"].as_str()).collect();
    for c in containers
        .iter()
        .filter(|c| c.name.as_deref().is_some_and(|n| !wanted.contains(&n)))
    {
        plan.push(Step::Discard { id: c.id.clone() });
    }
    plan
}

/// The restart decision for an exited container that the policy restarts:
/// the attempt to start now, or None while it backs off.
fn restart(
    plan: &mut Plan,
    memory: &Memory,
    name: &str,
    pod_name: &str,
    attempt: u32,
    ran: Duration,
    now: Instant,
) -> Option<u32> {
    let mut backoff = memory.restarts.get(name).copied().unwrap_or(Backoff {
        failures: 0,
        until: now,
    });
    if ran >= BACKOFF_RESET {
        backoff = Backoff {
            failures: 0,
            until: now,
        };
    }
    if backoff.until > now {
        plan.push(Step::Waiting {
            name: name.to_owned(),
            reason: "CrashLoopBackOff".into(),
            message: format!(
                "back-off {}s restarting failed container={name} pod={pod_name}",
                Backoff::after(backoff.failures).as_secs()
            ),
        });
        plan.soon(backoff.until - now);
        return None;
    }
    backoff.failures += 1;
    backoff.until = now
        + if backoff.failures == 1 {
            Duration::ZERO
        } else {
            Backoff::after(backoff.failures - 1)
        };
    plan.push(Step::RestartBackoff {
        name: name.to_owned(),
        backoff,
    });
    Some(attempt + 1)
}

/// Starts run `attempt` of spec container `c`, unless its image pull is
/// backing off.
fn start_or_wait(
    plan: &mut Plan,
    memory: &Memory,
    c: &Value,
    name: &str,
    attempt: u32,
    now: Instant,
) {
    if let Some(b) = memory.pulls.get(name).filter(|b| b.until > now) {
        let never = memory
            .waiting
            .get(name)
            .is_some_and(|(reason, _)| reason == "ErrImageNeverPull");
        if !never {
            let image = c["image"].as_str().unwrap_or("");
            // Keep the runtime's reason in view while backing off.
            let message = match memory.pull_errors.get(name) {
                Some(e) => format!("Back-off pulling image \"{image}\": {e}"),
                None => format!("Back-off pulling image \"{image}\""),
            };
            plan.push(Step::Waiting {
                name: name.to_owned(),
                reason: "ImagePullBackOff".into(),
                message,
            });
        }
        plan.soon(b.until - now);
        return;
    }
    plan.push(Step::Start {
        name: name.to_owned(),
        attempt,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::runtime::PodRef;
    use serde_json::json;
    use std::time::SystemTime;

    fn pod(policy: &str) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": policy, "terminationGracePeriodSeconds": 7,
                "containers": [{"name": "app", "image": "flotilla/busybox:latest"}]}})
    }

    fn container(id: &str, name: Option<&str>, attempt: u32, state: State) -> Container {
        Container {
            id: id.into(),
            pod: PodRef {
                uid: "u".into(),
                namespace: "ns".into(),
                name: "p".into(),
            },
            name: name.map(str::to_owned),
            attempt,
            image: "flotilla/busybox:latest".into(),
            image_id: String::new(),
            state,
            ip: name.is_none().then(|| "10.244.0.5".to_owned()),
        }
    }

    fn running() -> State {
        State::Running {
            started_at: SystemTime::UNIX_EPOCH,
        }
    }

    fn exited(code: i64, ran: Duration) -> State {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        State::Exited {
            code,
            started_at: Some(start),
            finished_at: start + ran,
            reason: "Error".into(),
        }
    }

    fn sandbox() -> Container {
        container("s1", None, 0, running())
    }

    fn names(plan: &Plan) -> Vec<String> {
        plan.steps
            .iter()
            .map(|s| {
                format!("{s:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }

    /// (case, containers, restart back-off, liveness, step kinds, wake).
    #[test]
    fn the_lifecycle_table() {
        let now = Instant::now();
        let later = now + Duration::from_secs(15);
        let short = Duration::from_secs(3);
        type Case = (
            &'static str,
            &'static str,
            Vec<Container>,
            Option<Backoff>,
            Option<bool>,
            Vec<&'static str>,
            Option<Duration>,
        );
        let cases: Vec<Case> = vec![
            (
                "no sandbox: run one, nothing else",
                "Always",
                vec![container("c1", Some("app"), 0, running())],
                None,
                None,
                vec!["StopAtOnce", "RunSandbox"],
                None,
            ),
            (
                "dead sandbox removed first",
                "Always",
                vec![container("s0", None, 0, exited(0, short))],
                None,
                None,
                vec!["Remove", "RunSandbox"],
                None,
            ),
            (
                "never ran: start attempt 0",
                "Always",
                vec![sandbox()],
                None,
                None,
                vec!["Start"],
                None,
            ),
            (
                "created but not started",
                "Always",
                vec![sandbox(), container("c1", Some("app"), 0, State::Created)],
                None,
                None,
                vec!["StartCreated"],
                None,
            ),
            (
                "running and healthy",
                "Always",
                vec![sandbox(), container("c1", Some("app"), 0, running())],
                None,
                Some(true),
                vec!["NotWaiting", "Probe"],
                None,
            ),
            (
                "liveness failed: kill, look again at once",
                "Always",
                vec![sandbox(), container("c1", Some("app"), 0, running())],
                None,
                Some(false),
                vec!["NotWaiting", "Probe", "Kill"],
                Some(Duration::ZERO),
            ),
            (
                "exited, first restart at once",
                "Always",
                vec![sandbox(), container("c1", Some("app"), 0, exited(1, short))],
                None,
                None,
                vec!["StopProbes", "RestartBackoff", "Start"],
                None,
            ),
            (
                "exited while backing off: CrashLoopBackOff",
                "Always",
                vec![sandbox(), container("c1", Some("app"), 0, exited(1, short))],
                Some(Backoff {
                    failures: 2,
                    until: later,
                }),
                None,
                vec!["StopProbes", "Waiting"],
                Some(Duration::from_secs(15)),
            ),
            (
                "a long run resets the back-off",
                "Always",
                vec![
                    sandbox(),
                    container("c1", Some("app"), 0, exited(1, BACKOFF_RESET)),
                ],
                Some(Backoff {
                    failures: 5,
                    until: later,
                }),
                None,
                vec!["StopProbes", "RestartBackoff", "Start"],
                None,
            ),
            (
                "OnFailure does not restart a success",
                "OnFailure",
                vec![sandbox(), container("c1", Some("app"), 0, exited(0, short))],
                None,
                None,
                vec!["StopProbes", "NotWaiting"],
                None,
            ),
            (
                "Never does not restart a failure",
                "Never",
                vec![sandbox(), container("c1", Some("app"), 0, exited(1, short))],
                None,
                None,
                vec!["StopProbes", "NotWaiting"],
                None,
            ),
            (
                "old runs are removed, unknown containers discarded",
                "Always",
                vec![
                    sandbox(),
                    container("c1", Some("app"), 0, exited(1, short)),
                    container("c2", Some("app"), 1, exited(1, short)),
                    container("c3", Some("app"), 2, running()),
                    container("x1", Some("gone"), 0, running()),
                ],
                None,
                Some(true),
                vec!["NotWaiting", "Probe", "Remove", "Discard"],
                None,
            ),
        ];
        for (case, policy, containers, backoff, live, steps, wake) in cases {
            let mut memory = Memory::default();
            if let Some(b) = backoff {
                memory.restarts.insert("app".into(), b);
            }
            let plan = plan(&pod(policy), "p_ns(u)", &containers, &memory, |_| live, now);
            assert_eq!(names(&plan), steps, "{case}: {plan:?}");
            assert_eq!(plan.wake, wake, "{case}");
        }
    }

    #[test]
    fn restart_attempts_and_backoffs_advance() {
        let now = Instant::now();
        let containers = vec![
            sandbox(),
            container("c1", Some("app"), 4, exited(1, Duration::ZERO)),
        ];
        let mut memory = Memory::default();
        memory.restarts.insert(
            "app".into(),
            Backoff {
                failures: 2,
                until: now,
            },
        );
        let plan = plan(&pod("Always"), "p", &containers, &memory, |_| None, now);
        assert!(plan.steps.contains(&Step::RestartBackoff {
            name: "app".into(),
            backoff: Backoff {
                failures: 3,
                until: now + Duration::from_secs(20),
            },
        }));
        assert!(plan.steps.contains(&Step::Start {
            name: "app".into(),
            attempt: 5,
        }));
    }

    #[test]
    fn a_pull_backing_off_waits_with_the_pull_error() {
        let now = Instant::now();
        let mut memory = Memory::default();
        memory.pulls.insert(
            "app".into(),
            Backoff {
                failures: 1,
                until: now + Duration::from_secs(10),
            },
        );
        memory
            .pull_errors
            .insert("app".into(), "no such image".into());
        let plan = plan(&pod("Always"), "p", &[sandbox()], &memory, |_| None, now);
        assert_eq!(
            plan.steps,
            vec![Step::Waiting {
                name: "app".into(),
                reason: "ImagePullBackOff".into(),
                message: "Back-off pulling image \"flotilla/busybox:latest\": no such image".into(),
            }]
        );
        assert_eq!(plan.wake, Some(Duration::from_secs(10)));
        // ErrImageNeverPull stays as it is while backing off.
        memory.waiting.insert(
            "app".into(),
            ("ErrImageNeverPull".into(), "not present".into()),
        );
        let plan = super::plan(&pod("Always"), "p", &[sandbox()], &memory, |_| None, now);
        assert!(plan.steps.is_empty(), "{plan:?}");
    }

    #[test]
    fn restart_policies() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("Always", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(should_restart("OnFailure", 137));
        assert!(!should_restart("Never", 1));
    }

    #[test]
    fn backoff_doubles_to_five_minutes() {
        assert_eq!(Backoff::after(1), Duration::from_secs(10));
        assert_eq!(Backoff::after(2), Duration::from_secs(20));
        assert_eq!(Backoff::after(3), Duration::from_secs(40));
        assert_eq!(Backoff::after(10), Duration::from_secs(300));
        assert_eq!(Backoff::after(u32::MAX), Duration::from_secs(300));
    }
}
