//! Unit tests of the causal buffer (property tests: `tests/dag_buffer_props.rs`).
#![allow(clippy::unwrap_used)]
use serde::{Deserialize, Serialize};

use super::*;
use crate::crypto::keccak256;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct M {
    id: MessageId,
    clock: u64,
    parents: Vec<MessageId>,
    ephemeral: bool,
}

impl Causal for M {
    fn id(&self) -> MessageId {
        self.id
    }
    fn clock(&self) -> u64 {
        self.clock
    }
    fn parents(&self) -> &[MessageId] {
        &self.parents
    }
    fn ephemeral(&self) -> bool {
        self.ephemeral
    }
    fn size(&self) -> usize {
        100
    }
}

fn id(n: u32) -> MessageId {
    MessageId::from_slice(&keccak256(n.to_be_bytes())).unwrap()
}

fn m(n: u32, parents: &[u32]) -> M {
    M {
        id: id(n),
        clock: u64::from(n) + 1,
        parents: parents.iter().map(|p| id(*p)).collect(),
        ephemeral: false,
    }
}

fn buffer(limits: Limits) -> CausalBuffer<M> {
    CausalBuffer::new(limits, &mut ChaCha20Rng::seed_from_u64(1))
}

fn drain(b: &mut CausalBuffer<M>) -> Vec<MessageId> {
    std::iter::from_fn(|| b.poll_deliverable())
        .map(|d| d.item.id)
        .collect()
}

#[test]
fn chain_in_reverse_is_released_in_order() {
    let mut b = buffer(Limits::default());
    for n in (1..5).rev() {
        assert_eq!(
            b.insert(m(n, &[n - 1]), 0),
            Ok(Inserted::Pending { waiting_for: 1 })
        );
    }
    assert_eq!(b.poll_wanted().map(|w| w.id), Some(id(3)));
    assert!(drain(&mut b).is_empty());
    assert_eq!(b.insert(m(0, &[]), 0), Ok(Inserted::Ready));
    assert_eq!(drain(&mut b), (0..5).map(id).collect::<Vec<_>>());
    assert_eq!((b.pending_len(), b.missing_len()), (0, 0));
}

#[test]
fn diamond_waits_for_both_parents_and_duplicates_are_ignored() {
    let mut b = buffer(Limits::default());
    b.insert(m(3, &[1, 2]), 0).unwrap();
    b.insert(m(1, &[0]), 0).unwrap();
    assert_eq!(b.insert(m(1, &[0]), 0), Ok(Inserted::Duplicate));
    b.insert(m(0, &[]), 0).unwrap();
    assert_eq!(drain(&mut b), vec![id(0), id(1)]);
    b.insert(m(2, &[0]), 0).unwrap();
    assert_eq!(drain(&mut b), vec![id(2), id(3)]);
    assert_eq!(b.insert(m(3, &[1, 2]), 0), Ok(Inserted::Duplicate));
    assert_eq!(b.state(&id(3)), Some(IdState::Delivered));
}

#[test]
fn shape_errors_are_typed() {
    let mut b = buffer(Limits::default());
    assert_eq!(b.insert(m(1, &[1]), 0), Err(BufferError::SelfParent));
    assert_eq!(
        b.insert(m(1, &[2, 2]), 0),
        Err(BufferError::DuplicateParent)
    );
    let many: Vec<u32> = (10..19).collect();
    assert_eq!(
        b.insert(m(1, &many), 0),
        Err(BufferError::TooManyParents { count: 9, max: 8 })
    );
    let mut small = buffer(Limits {
        max_message_bytes: 99,
        ..Limits::default()
    });
    assert_eq!(
        small.insert(m(1, &[]), 0),
        Err(BufferError::Oversized { size: 100, max: 99 })
    );
    assert_eq!(b.known_len(), 0);
}

#[test]
fn a_descendant_as_parent_is_refused() {
    let mut b = buffer(Limits::default());
    b.insert(m(1, &[]), 0).unwrap();
    b.insert(m(5, &[1]), 0).unwrap();
    // Message 3 (clock 4) claims delivered 5 (clock 6) as parent.
    assert_eq!(
        b.insert(m(3, &[5]), 0),
        Err(BufferError::ParentNotBefore {
            parent: id(5),
            parent_clock: 6,
            clock: 4
        })
    );
}

#[test]
fn a_forged_cycle_is_broken_when_it_closes() {
    // a -> d -> c -> a (x -> y: x names y as parent), with clocks that cannot all rise.
    let mut b = buffer(Limits::default());
    let a = M {
        id: id(100),
        clock: 50,
        parents: vec![id(101)],
        ephemeral: false,
    };
    let d = M {
        id: id(101),
        clock: 40,
        parents: vec![id(102)],
        ephemeral: false,
    };
    let c = M {
        id: id(102),
        clock: 30,
        parents: vec![id(100)],
        ephemeral: false,
    };
    b.insert(c, 0).unwrap();
    b.insert(d, 0).unwrap();
    b.insert(a, 0).unwrap();
    let r = b.poll_rejected().unwrap();
    assert_eq!(r.id, id(102));
    assert!(matches!(r.error, BufferError::ParentNotBefore { .. }));
    // The cycle is broken: d and a are delivered with c as a gap.
    let out: Vec<Delivery<M>> = std::iter::from_fn(|| b.poll_deliverable()).collect();
    assert_eq!(
        out.iter().map(|d| d.item.id).collect::<Vec<_>>(),
        vec![id(101), id(100)]
    );
    assert_eq!(out[0].gap_parents, vec![id(102)]);
    assert_eq!(
        b.poll_gap().map(|g| (g.id, g.reason)),
        Some((id(102), GapReason::Invalid))
    );
    assert_eq!((b.pending_len(), b.missing_len()), (0, 0));
}

#[test]
fn ephemeral_messages_cannot_be_parents() {
    let mut b = buffer(Limits::default());
    let e = M {
        ephemeral: true,
        ..m(1, &[])
    };
    b.insert(m(2, &[1]), 0).unwrap();
    b.insert(e.clone(), 0).unwrap();
    assert_eq!(
        b.poll_rejected().map(|r| r.error),
        Some(BufferError::EphemeralParent(id(1)))
    );
    assert_eq!(drain(&mut b), vec![id(1)]);
    assert_eq!(
        b.insert(m(3, &[1]), 0),
        Err(BufferError::EphemeralParent(id(1)))
    );
    assert_eq!(b.insert(e, 0), Ok(Inserted::Duplicate));
}

#[test]
fn gap_deadline_releases_dependants_and_late_arrival_is_delivered_once() {
    let limits = Limits {
        gap_deadline_ms: 1000,
        ..Limits::default()
    };
    let mut b = buffer(limits);
    b.insert(m(2, &[1]), 100).unwrap();
    b.insert(m(3, &[2]), 150).unwrap();
    assert_eq!(
        b.poll_wanted(),
        Some(Wanted {
            id: id(1),
            since: 100
        })
    );
    assert_eq!(b.poll_wanted(), None);
    assert_eq!(b.poll_timeout(), Some(1100));
    b.handle_timeout(1099);
    assert!(drain(&mut b).is_empty());
    b.handle_timeout(1100);
    let out: Vec<Delivery<M>> = std::iter::from_fn(|| b.poll_deliverable()).collect();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].gap_parents, vec![id(1)]);
    assert!(out[1].gap_parents.is_empty());
    assert_eq!(
        b.poll_gap(),
        Some(Gap {
            id: id(1),
            since: 100,
            declared_at: 1100,
            reason: GapReason::Deadline,
            dependants: 1
        })
    );
    // A later child of the gap id goes straight through, marked.
    b.insert(m(4, &[1]), 1200).unwrap();
    assert_eq!(b.poll_deliverable().unwrap().gap_parents, vec![id(1)]);
    // The missing message itself turns up: delivered once, late.
    b.insert(m(1, &[]), 1300).unwrap();
    let d = b.poll_deliverable().unwrap();
    assert_eq!((d.item.id, d.late), (id(1), true));
    assert_eq!(b.insert(m(1, &[]), 1300), Ok(Inserted::Duplicate));
    assert_eq!(b.poll_timeout(), None);
}

#[test]
fn pressure_declares_the_oldest_gap_instead_of_growing() {
    let mut b = buffer(Limits {
        max_pending: 3,
        ..Limits::default()
    });
    for n in 0..10u32 {
        // Each message waits for its own bogus parent.
        b.insert(m(1000 + n, &[n]), u64::from(n)).unwrap();
        assert!(b.pending_len() <= 3);
    }
    let gaps: Vec<Gap> = std::iter::from_fn(|| b.poll_gap()).collect();
    assert_eq!(gaps.len(), 7);
    assert!(gaps.iter().all(|g| g.reason == GapReason::Pressure));
    assert_eq!(
        gaps.iter().map(|g| g.id).collect::<Vec<_>>(),
        (0..7).map(id).collect::<Vec<_>>()
    );
    assert_eq!(drain(&mut b).len(), 7);
    let mut bytes = buffer(Limits {
        max_pending_bytes: 250,
        ..Limits::default()
    });
    for n in 0..10u32 {
        bytes.insert(m(1000 + n, &[n]), 0).unwrap();
        assert!(bytes.pending_bytes() <= 250);
    }
}

#[test]
fn handle_known_resolves_wants_from_the_store() {
    let mut b = buffer(Limits::default());
    b.insert(m(5, &[1, 2]), 0).unwrap();
    b.handle_known(id(1), 2, false, 0).unwrap();
    assert!(drain(&mut b).is_empty());
    b.handle_known(id(2), 3, false, 0).unwrap();
    assert_eq!(drain(&mut b), vec![id(5)]);
    assert!(b.forget(&id(1)));
    assert!(!b.forget(&id(77)));
    b.insert(m(6, &[1]), 0).unwrap();
    assert_eq!(b.poll_wanted().map(|w| w.id), Some(id(1)));
    b.insert(m(7, &[]), 0).unwrap();
    b.insert(m(8, &[7]), 0).unwrap();
    assert_eq!(drain(&mut b), vec![id(7), id(8)]);
    b.insert(m(9, &[10]), 0).unwrap();
    assert_eq!(
        b.handle_known(id(9), 1, false, 0),
        Err(BufferError::Pending(id(9)))
    );
}

#[test]
fn a_long_chain_releases_without_recursion() {
    let mut b = buffer(Limits {
        max_pending: 300_000,
        ..Limits::default()
    });
    // Deep enough that one stack frame per level would overflow a 2 MiB test thread.
    let n = 30_000u32;
    for i in (1..n).rev() {
        b.insert(m(i, &[i - 1]), 0).unwrap();
    }
    b.insert(m(0, &[]), 0).unwrap();
    assert_eq!(drain(&mut b).len(), n as usize);
}

#[test]
fn snapshot_restores_without_redelivery_or_loss() {
    let limits = Limits {
        gap_deadline_ms: 1000,
        ..Limits::default()
    };
    let script = |b: &mut CausalBuffer<M>, part: u8| match part {
        0 => {
            b.insert(m(3, &[1, 2]), 10).unwrap();
            b.insert(m(1, &[0]), 20).unwrap();
            b.insert(m(9, &[8]), 30).unwrap();
            b.insert(m(10, &[9]), 30).unwrap();
            b.insert(m(0, &[]), 40).unwrap();
        }
        _ => {
            b.insert(m(2, &[0]), 50).unwrap();
            b.handle_timeout(2000);
            b.insert(m(8, &[]), 2100).unwrap();
        }
    };
    let outputs = |b: &mut CausalBuffer<M>| {
        let d: Vec<Delivery<M>> = std::iter::from_fn(|| b.poll_deliverable()).collect();
        let g: Vec<Gap> = std::iter::from_fn(|| b.poll_gap()).collect();
        (d, g)
    };
    let mut straight = buffer(limits);
    script(&mut straight, 0);
    let first = outputs(&mut straight);
    script(&mut straight, 1);
    let want = outputs(&mut straight);

    let mut b = buffer(limits);
    script(&mut b, 0);
    assert_eq!(outputs(&mut b), first);
    let json = serde_json::to_string(&b).unwrap();
    let mut restored: CausalBuffer<M> = serde_json::from_str(&json).unwrap();
    assert_eq!(serde_json::to_string(&restored).unwrap(), json);
    // Missing ids are wanted again after a restart, with their first `since`.
    let wanted: Vec<Wanted> = std::iter::from_fn(|| restored.poll_wanted()).collect();
    assert_eq!(
        wanted,
        vec![
            Wanted {
                id: id(2),
                since: 10
            },
            Wanted {
                id: id(8),
                since: 30
            }
        ]
    );
    script(&mut restored, 1);
    assert_eq!(outputs(&mut restored), want);
    assert_eq!(want.0.len(), 5);
    assert!(want.0[4].late);
}

#[test]
fn corrupt_snapshots_are_errors_not_panics() {
    let mut b = buffer(Limits::default());
    b.insert(m(2, &[1]), 0).unwrap();
    b.handle_known(id(7), 1, false, 0).unwrap();
    let json = serde_json::to_string(&b).unwrap();
    // The pending message listed as delivered too.
    let bad = json.replace(
        "\"resolved\":[",
        &format!(
            "\"resolved\":[{{\"id\":\"{}\",\"clock\":3,\"state\":\"Delivered\"}},",
            id(2)
        ),
    );
    assert!(serde_json::from_str::<CausalBuffer<M>>(&bad).is_err());
    assert!(serde_json::from_str::<CausalBuffer<M>>("{}").is_err());
}

#[test]
fn heap_bytes_is_reported() {
    let mut b = buffer(Limits::default());
    for i in 1..100 {
        b.insert(m(i, &[i - 1]), 0).unwrap();
    }
    assert!(b.heap_bytes() > 99 * 44);
}
