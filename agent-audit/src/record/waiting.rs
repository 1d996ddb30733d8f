//! `--wait`: parents armed so that the kernel program claims their new children from their
//! first syscall, and what becomes of each claimed child (a recording, an exclusion, a wait for
//! a free slot).

use std::collections::HashMap;
use std::path::PathBuf;

use agent_audit_ebpf::MAX_TARGETS;
use time::OffsetDateTime;

use super::lookups::{Lookup, Lookups};
use super::outputs::OutputPlan;
use super::recording::Recording;
use crate::allowlist::MissedStart;
use crate::attribution;
use crate::bpf::SyscallCounter;
use crate::cgroup::{Cgroup, CgroupV2Mount};
use crate::engine::AwaitedContainer;
use crate::shell::status;
use crate::target::CgroupTarget;
use crate::watch::{CgroupGlob, MkdirEvents};
use crate::Error;

/// A parent cgroup armed by `--wait`, and which of its new children to keep.
pub(super) struct Watch {
    /// The parent and the children's name pattern.
    pub(super) glob: CgroupGlob,
    /// Only the child that is this container's cgroup, when set.
    pub(super) container: Option<AwaitedContainer>,
}

impl Watch {
    /// The target child `id` (`name` below `parent`) is for this watch: [`Resolved::Target`]
    /// for a pattern's match, or for the awaited container's own cgroup once its engine has
    /// answered (asked on the lookup thread: [`Resolved::Pending`] until then).
    fn target_for(
        &self,
        index: usize,
        lookups: &mut Lookups,
        (parent, name, id): (&std::path::Path, &str, u64),
    ) -> Resolved {
        let g = &self.glob;
        if g.parent.dir != parent || !g.matches_child(name) {
            return Resolved::Unwanted;
        }
        let cgroup = Cgroup {
            dir: parent.join(name),
            rel: format!("{}/{name}", g.parent.rel.trim_end_matches('/')),
            id,
        };
        match &self.container {
            None => Resolved::Target(Box::new(CgroupTarget::for_glob(cgroup, &g.pattern))),
            Some(wanted) => match lookups.claim(index, wanted, name) {
                Lookup::Container(info) => {
                    lookups.forget(index, name);
                    Resolved::Target(Box::new(CgroupTarget::for_container(
                        cgroup,
                        &wanted.name,
                        info,
                    )))
                }
                Lookup::Other => {
                    lookups.forget(index, name);
                    Resolved::Unwanted
                }
                Lookup::Pending => Resolved::Pending,
            },
        }
    }
}

/// What a new child of a watched parent is to the watches.
enum Resolved {
    /// A target.
    Target(Box<CgroupTarget>),
    /// Wanted by no watch.
    Unwanted,
    /// A container's engine has not answered yet whether it is the container.
    Pending,
}

/// State of `--wait`: what to match new cgroups against and where their files go.
pub(super) struct Waiting {
    mount: CgroupV2Mount,
    watches: Vec<Watch>,
    outputs: OutputPlan,
    /// Names of the children created since arming, by id.
    pub(super) events: MkdirEvents,
    /// Children that matched nothing: (cgroup id, directory), forgotten once gone.
    excluded: Vec<(u64, PathBuf)>,
    /// Wanted children that found every slot in use, by cgroup id, until they get one.
    pub(super) starved: HashMap<u64, Starved>,
    /// The latest children created and removed before their creation was read (at most
    /// [`MAX_VANISHED`]): named in the warning about a claimed cgroup that cannot be named.
    vanished: Vec<String>,
    pub(super) picked_up: usize,
    /// Container-engine lookups, answered on a thread of their own.
    lookups: Lookups,
    /// Claimed children whose engine has not answered yet: counted meanwhile, decided when
    /// it answers.
    awaiting_engine: Vec<(u64, crate::bpf::TargetSlot)>,
}

/// How many names of vanished children are kept for that warning.
const MAX_VANISHED: usize = 8;

/// A wanted child of a watched parent that is not counted yet: every slot was in use.
pub(super) struct Starved {
    /// When its first call found no slot.
    since: OffsetDateTime,
    /// Its path below the cgroup2 mount, for messages.
    rel: String,
    /// Its directory, to notice when it is gone.
    dir: PathBuf,
}

impl Waiting {
    /// Arms the parents of `watches`: from now on the kernel program claims each new child
    /// from its first syscall. Existing children that are not `active` targets are excluded
    /// first, so that their tasks never claim a slot.
    pub(super) fn arm(
        counter: &mut SyscallCounter,
        mount: CgroupV2Mount,
        watches: Vec<Watch>,
        outputs: OutputPlan,
        active: &[Recording],
    ) -> Result<Self, Error> {
        // Names are collected from before the parents are armed, so that every cgroup the
        // kernel program may claim has been seen created.
        let parents: Vec<&std::path::Path> = watches
            .iter()
            .map(|w| w.glob.parent.dir.as_path())
            .collect();
        let events = MkdirEvents::new(&parents).map_err(Error::Io)?;
        let mut excluded = Vec::new();
        for glob in watches.iter().map(|w| &w.glob) {
            // Existing siblings that are not targets must not be claimed when their tasks
            // next resolve their cgroup; exclude them before arming the parent.
            for child in glob.existing_children(&mount) {
                if !active.iter().any(|r| r.target.cgroup.id == child.id) {
                    counter.exclude_cgroup(child.id)?;
                    excluded.push((child.id, child.dir));
                }
            }
            counter.watch_parent(glob.parent.id)?;
        }
        Ok(Self {
            mount,
            watches,
            outputs,
            events,
            excluded,
            starved: HashMap::new(),
            vanished: Vec::new(),
            picked_up: 0,
            lookups: Lookups::start(),
            awaiting_engine: Vec::new(),
        })
    }

    /// What the ready line says it is armed for: each pattern, or container and pattern.
    pub(super) fn armed_for(&self) -> String {
        self.watches
            .iter()
            .map(|x| match &x.container {
                Some(c) => format!("container {} ({})", c.name, x.glob.pattern),
                None => x.glob.pattern.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Deals with everything that happened below the watched parents since the last call:
    /// new children nobody wants are excluded before they can take a slot, children that
    /// found no slot are reported, children that got one become recordings.
    pub(super) fn update(
        &mut self,
        counter: &mut SyscallCounter,
        active: &mut Vec<Recording>,
    ) -> Result<(), Error> {
        // A cgroup's mkdir event is queued before any of its tasks can make a syscall, but
        // may not have been read yet.
        self.events.read_pending().map_err(Error::Io)?;
        self.note_vanished();
        self.exclude_unwanted(counter)?;
        // Before adopting: a starved child may get a slot at once.
        self.note_starved(counter)?;
        self.adopt_claimed(counter, active)?;
        self.forget_gone(counter)
    }

    /// New children whose name no pattern matches: excluded at once, so that a burst of
    /// them never holds the slots wanted ones need.
    fn exclude_unwanted(&mut self, counter: &mut SyscallCounter) -> Result<(), Error> {
        for id in self.events.take_new() {
            let Some((parent, name)) = self.events.name_of(id) else {
                continue;
            };
            let wanted = self
                .watches
                .iter()
                .any(|w| w.glob.parent.dir == parent && w.glob.matches_child(&name));
            if !wanted && counter.exclude_unclaimed(id)? {
                self.excluded.push((id, parent.join(name)));
            }
        }
        Ok(())
    }

    /// The (parent, name) of a child of a watched parent. It may already be gone (a
    /// short-lived container): its name is known from the moment its event was read. If the
    /// event was read too late to see the directory, the directory itself may still be there.
    fn name_of(&mut self, id: u64) -> Option<(PathBuf, String)> {
        if self.events.name_of(id).is_none() {
            let found = self.watches.iter().find_map(|w| {
                let child = w.glob.child_by_id(&self.mount, id)?;
                let name = child.dir.file_name()?.to_string_lossy().into_owned();
                Some((w.glob.parent.dir.clone(), name))
            });
            if let Some((parent, name)) = found {
                self.events.remember(id, parent, name);
            }
        }
        self.events.name_of(id)
    }

    /// The name the kernel program recorded when child `id` claimed `slot`, under the watched
    /// parent it named: how a cgroup created and removed before its creation event was read
    /// still gets its own file.
    fn name_from_kernel(
        &mut self,
        counter: &SyscallCounter,
        id: u64,
        slot: crate::bpf::TargetSlot,
    ) -> Result<Option<(PathBuf, String)>, Error> {
        let Some((parent_id, name)) = counter.claimed_name(slot, id)? else {
            return Ok(None);
        };
        let Some(parent) = self
            .watches
            .iter()
            .find(|w| w.glob.parent.id == parent_id)
            .map(|w| w.glob.parent.dir.clone())
        else {
            return Ok(None);
        };
        tracing::debug!(id, %name, "named by the kernel program (gone before its event was read)");
        self.events.remember(id, parent.clone(), name.clone());
        Ok(Some((parent, name)))
    }

    /// The target child `id` is, if a watch wants it; pending while an engine that could
    /// want it has not answered.
    fn target_of(&mut self, id: u64, parent: &std::path::Path, name: &str) -> Resolved {
        let mut pending = false;
        for (index, w) in self.watches.iter().enumerate() {
            match w.target_for(index, &mut self.lookups, (parent, name, id)) {
                Resolved::Target(t) => return Resolved::Target(t),
                Resolved::Pending => pending = true,
                Resolved::Unwanted => {}
            }
        }
        match pending {
            true => Resolved::Pending,
            false => Resolved::Unwanted,
        }
    }

    /// Turns the cgroups the kernel program claimed into recordings or exclusions.
    fn adopt_claimed(
        &mut self,
        counter: &mut SyscallCounter,
        active: &mut Vec<Recording>,
    ) -> Result<(), Error> {
        let mut claimed = std::mem::take(&mut self.awaiting_engine);
        claimed.extend(counter.claimed_targets()?);
        for (id, slot) in claimed {
            let named = match self.name_of(id) {
                Some(named) => Some(named),
                None => self.name_from_kernel(counter, id, slot)?,
            };
            tracing::debug!(id, ?slot, name = ?named, "kernel program claimed a cgroup");
            let target = match &named {
                Some((parent, name)) => match self.target_of(id, parent, name) {
                    Resolved::Target(t) => Some(*t),
                    Resolved::Pending => {
                        self.awaiting_engine.push((id, slot));
                        continue;
                    }
                    Resolved::Unwanted => None,
                },
                None => None,
            };
            let Some(target) = target else {
                match named {
                    Some((parent, name)) => self.excluded.push((id, parent.join(name))),
                    None => match self.mount.resolve_id(id) {
                        Ok(c) => self.excluded.push((id, c.dir)),
                        Err(_) => self.report_unnamed(counter, id, slot)?,
                    },
                }
                counter.exclude_claimed(slot)?;
                continue;
            };
            let continued = self.outputs.continued_path(&target);
            match continued
                .clone()
                .map_or_else(|| self.outputs.next_path(&target), Ok)
            {
                Ok(out) => {
                    tracing::info!(cgroup = %target.cgroup.rel, "picked up new cgroup");
                    if continued.is_some() {
                        status!(
                            "agent-audit: {}: started again ({}): this start is added to {}",
                            target.label(),
                            target.cgroup.rel,
                            out.display()
                        );
                    }
                    let mut recording = Recording::adopt(target, slot, out);
                    recording.earlier_pending = continued.is_some();
                    if let Some(starved) = self.starved.remove(&id) {
                        recording.missed_start = Some(MissedStart {
                            since: starved.since,
                            recorded_from: recording.started_at,
                        });
                        status!(
                            "agent-audit: {}: got a target slot; recording from {} (calls since \
                             {} were not recorded; its allowlist says missed_start)",
                            starved.rel,
                            rfc3339(recording.started_at),
                            rfc3339(starved.since)
                        );
                    }
                    active.push(recording);
                    self.picked_up += 1;
                }
                Err(e) => {
                    tracing::warn!("{e}; not recording {}", target.cgroup.rel);
                    self.excluded.push((id, target.cgroup.dir.clone()));
                    counter.exclude_claimed(slot)?;
                }
            }
        }
        Ok(())
    }

    /// Keeps the names of the latest children that were gone before they could be looked up.
    fn note_vanished(&mut self) {
        for (parent, name) in self.events.take_vanished() {
            self.vanished.push(parent.join(name).display().to_string());
        }
        let excess = self.vanished.len().saturating_sub(MAX_VANISHED);
        self.vanished.drain(..excess);
    }

    /// A cgroup the kernel program counted from its first call, but which was removed before
    /// its creation event was read: its id leads to no name, so neither whether a pattern
    /// wants it nor a file name for it is known. Its calls are dropped with the slot; say so
    /// rather than lose them silently.
    fn report_unnamed(
        &mut self,
        counter: &SyscallCounter,
        id: u64,
        slot: crate::bpf::TargetSlot,
    ) -> Result<(), Error> {
        let calls: u64 = counter.read(slot)?.syscalls.iter().map(|s| s.2).sum();
        let candidates = if self.vanished.is_empty() {
            String::new()
        } else {
            format!(
                " (created and removed before they could be looked up: {})",
                std::mem::take(&mut self.vanished).join(", ")
            )
        };
        status!(
            "agent-audit: warning: a new cgroup (id {id}) made {calls} syscalls but was removed \
             before its name could be read{candidates}: its calls are in no allowlist"
        );
        Ok(())
    }

    /// Reports the children that found every slot in use. Wanted ones get the next slots
    /// that free, first come first served; the rest are excluded.
    fn note_starved(&mut self, counter: &mut SyscallCounter) -> Result<(), Error> {
        for (id, first_ns) in counter.drain_starved()? {
            if self.starved.contains_key(&id) {
                continue;
            }
            let Some((parent, name)) = self.name_of(id) else {
                continue; // gone before it could be named: nothing of it can be recorded
            };
            let target = match self.target_of(id, &parent, &name) {
                Resolved::Target(t) => *t,
                // Reported again at its next call that finds no slot, answered by then.
                Resolved::Pending => continue,
                Resolved::Unwanted => {
                    if counter.exclude_unclaimed(id)? {
                        self.excluded.push((id, parent.join(name)));
                    }
                    continue;
                }
            };
            let since = attribution::wall_clock(first_ns);
            status!(
                "agent-audit: warning: {}: new cgroup {} found all {MAX_TARGETS} target slots in \
                 use: its calls are not recorded until a slot frees (its allowlist will say \
                 missed_start)",
                rfc3339(since),
                target.cgroup.rel
            );
            counter.wait_for_slot(id)?;
            self.starved.insert(
                id,
                Starved {
                    since,
                    rel: target.cgroup.rel,
                    dir: target.cgroup.dir,
                },
            );
        }
        Ok(())
    }

    /// Drops the kernel's entries for excluded children that are gone, and reports the
    /// starved ones that ended before a slot freed.
    fn forget_gone(&mut self, counter: &mut SyscallCounter) -> Result<(), Error> {
        let (gone, kept): (Vec<_>, Vec<_>) =
            self.excluded.drain(..).partition(|(_, dir)| !dir.exists());
        self.excluded = kept;
        for (id, _) in gone {
            counter.forget_cgroup(id)?;
        }
        let gone: Vec<u64> = self
            .starved
            .iter()
            .filter(|(_, s)| !s.dir.exists())
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            counter.stop_waiting(id);
            if let Some(s) = self.starved.remove(&id) {
                report_unrecorded(&s, "ended");
            }
        }
        Ok(())
    }
}

impl Waiting {
    /// At the end: says which claimed cgroups were never decided, their engine not having
    /// answered whether they are its container (their calls are in no allowlist).
    pub(super) fn report_awaiting_engine(&self) {
        for (id, _) in &self.awaiting_engine {
            let name = self
                .events
                .name_of(*id)
                .map(|(parent, name)| parent.join(name).display().to_string())
                .unwrap_or_else(|| format!("id {id}"));
            status!(
                "agent-audit: warning: {name}: recording stopped before the container engine \
                 answered whether it is the awaited container: its calls are in no allowlist"
            );
        }
    }
}

/// Says that a wanted cgroup was never recorded.
pub(super) fn report_unrecorded(s: &Starved, how: &str) {
    status!(
        "agent-audit: warning: {}: {how} before a target slot freed: none of its calls (since {}) \
         were recorded; no allowlist written",
        s.rel,
        rfc3339(s.since)
    );
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
