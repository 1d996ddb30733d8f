//! Container-engine lookups off the recorder's loop: whether a new cgroup is the awaited
//! container's is asked of its engine (`GET /containers/NAME/json`) on a thread of its own, so
//! that a slow or stalled engine (each request is bounded by the engine client's 10 s timeout)
//! never delays the loop — snapshots, removals and every other target's file go on meanwhile.
//! The cgroup is counted by the kernel program from its first call whatever the answer's delay;
//! only the decision to keep it waits.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{channel, Receiver, Sender};

use crate::allowlist::ContainerInfo;
use crate::engine::AwaitedContainer;

/// Which watch, and which child of its parent (by directory name).
type Key = (usize, String);

/// A question for the engine's thread.
struct Question {
    key: Key,
    container: AwaitedContainer,
}

/// The engine's answer for one child, once it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    /// The child is the container (described as the engine answered, or from the watch).
    Container(ContainerInfo),
    /// The child is not the container.
    Other,
    /// Asked; no answer yet.
    Pending,
}

/// The lookups asked and answered so far, and the thread that asks.
pub(super) struct Lookups {
    questions: Option<Sender<Question>>,
    answers: Receiver<(Key, Option<ContainerInfo>)>,
    answered: HashMap<Key, Option<ContainerInfo>>,
    asked: HashSet<Key>,
}

impl Lookups {
    /// Starts the lookup thread; it ends when this value is dropped.
    pub(super) fn start() -> Self {
        let (questions, inbox) = channel::<Question>();
        let (outbox, answers) = channel();
        let spawned = std::thread::Builder::new()
            .name("engine-lookups".into())
            .spawn(move || {
                for q in inbox {
                    let info = q.container.claim(&q.key.1);
                    if outbox.send((q.key, info)).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = &spawned {
            tracing::warn!("no engine lookup thread ({e}): lookups never answer");
        }
        Self {
            questions: spawned.ok().map(|_| questions),
            answers,
            answered: HashMap::new(),
            asked: HashSet::new(),
        }
    }

    /// Whether child `name` of watch `watch` is `container`: the answer if it came, else
    /// [`Lookup::Pending`] (asked now if it was not yet).
    pub(super) fn claim(
        &mut self,
        watch: usize,
        container: &AwaitedContainer,
        name: &str,
    ) -> Lookup {
        while let Ok((key, info)) = self.answers.try_recv() {
            self.answered.insert(key, info);
        }
        let key = (watch, name.to_string());
        if let Some(info) = self.answered.get(&key) {
            return match info {
                Some(info) => Lookup::Container(info.clone()),
                None => Lookup::Other,
            };
        }
        if self.asked.insert(key.clone()) {
            if let Some(questions) = &self.questions {
                let _ = questions.send(Question {
                    key,
                    container: container.clone(),
                });
            }
        }
        Lookup::Pending
    }

    /// Forgets the answer for a child once it is decided (a later child of the same name is
    /// asked about again).
    pub(super) fn forget(&mut self, watch: usize, name: &str) {
        let key = (watch, name.to_string());
        self.answered.remove(&key);
        self.asked.remove(&key);
    }
}
