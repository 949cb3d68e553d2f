//! Making pushed operations: every one of a request or none. The one check that
//! depends on what the tracker holds (a passkey change needs its user) runs over the
//! whole request before anything is made; then the operations are laid over the
//! snapshots under one push number, in order.

use std::collections::HashMap;
use std::sync::Arc;

use super::parse::BadField;
use super::Operation;
use crate::tracker::{Passkey, Snapshots, User};

/// A request that cannot be made as it stands (the tracker's state refuses it, not
/// its form): nothing was made.
pub type Refused = BadField;

/// A user change, once passkey changes are resolved to the users they move.
enum Step<'a> {
    Op(&'a Operation),
    User(Passkey, Option<User>),
}

/// Makes `ops` (parsed from one request; `array`: the body was an array, which
/// field paths show as `[i].`).
pub fn apply(snapshots: &Snapshots, ops: &[Operation], array: bool) -> Result<(), Refused> {
    let pushes = &snapshots.pushes;
    // One request at a time: its number orders it against the others and the loads.
    let mut small = pushes.lock_small();
    let steps = resolve(snapshots, ops, array)?;
    let push = pushes.clock.next();
    let mut clients = None;
    for step in steps {
        match step {
            Step::User(passkey, user) => pushes.users.set(passkey, push, user),
            Step::Op(op) => match op {
                Operation::UpdateTorrent { info_hash, torrent } => {
                    pushes.torrents.set(*info_hash, push, Some(*torrent));
                }
                Operation::DeleteTorrent { info_hash, id } => {
                    let current = snapshots.catalogue.load().get(info_hash);
                    // With an id, only that torrent goes: the hash may be another's now.
                    if id.is_none_or(|id| current.is_some_and(|listing| listing.id == id)) {
                        pushes.torrents.set(*info_hash, push, None);
                    }
                }
                Operation::Client(change) => {
                    let list = clients.unwrap_or_else(|| snapshots.clients.load_full());
                    clients = Some(Arc::new(list.changed(change)));
                    small.clients.push((push, change.clone()));
                }
                Operation::SetGlobalFreeleech { on } => {
                    small.global_freeleech = push;
                    if *on != snapshots.global_freeleech() {
                        tracing::info!("Global freeleech is now {} (pushed)", on_off(*on));
                    }
                    snapshots.set_global_freeleech(*on);
                }
                Operation::HitAndRun {
                    user,
                    torrent,
                    open,
                } => {
                    pushes
                        .hit_and_runs
                        .set((*user, *torrent), push, open.then_some(()));
                }
                // Resolved to steps of their own.
                Operation::UpdateUser { .. } | Operation::ChangePasskey { .. } => {}
            },
        }
    }
    if let Some(clients) = clients {
        snapshots.clients.store(clients);
    }
    Ok(())
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// The operations as steps, user changes resolved against what the tracker holds and
/// what the request changed before them.
fn resolve<'a>(
    snapshots: &Snapshots,
    ops: &'a [Operation],
    array: bool,
) -> Result<Vec<Step<'a>>, Refused> {
    let users = snapshots.users.load();
    // The users this request set so far.
    let mut staged: HashMap<Passkey, Option<User>> = HashMap::new();
    let current =
        |staged: &HashMap<Passkey, Option<User>>, passkey: &Passkey| match staged.get(passkey) {
            Some(user) => *user,
            None => users.get(passkey.as_bytes()),
        };
    let mut steps = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        match op {
            Operation::UpdateUser { passkey, user } => {
                staged.insert(passkey.clone(), *user);
                steps.push(Step::User(passkey.clone(), *user));
            }
            Operation::ChangePasskey { old, new } => match current(&staged, old) {
                Some(user) => {
                    staged.insert(old.clone(), None);
                    staged.insert(new.clone(), Some(user));
                    steps.push(Step::User(old.clone(), None));
                    steps.push(Step::User(new.clone(), Some(user)));
                }
                // Sent again after it was made: nothing left to do.
                None if current(&staged, new).is_some() => {}
                None => {
                    let at = if array {
                        format!("[{i}].")
                    } else {
                        String::new()
                    };
                    return Err(BadField {
                        field: format!("{at}old_passkey"),
                        problem: "no enabled user has this passkey".to_owned(),
                    });
                }
            },
            op => steps.push(Step::Op(op)),
        }
    }
    Ok(steps)
}
