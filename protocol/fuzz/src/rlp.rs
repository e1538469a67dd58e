//! RLP-aware mutation: parse the item tree, change one node, re-encode canonically.

use crate::{Rng, bytes, edge_u64};

/// An RLP item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Item>),
}

/// Parses exactly one item filling `data` (non-canonical headers are accepted: the
/// re-encoding fixes them).
pub fn parse(data: &[u8]) -> Option<Item> {
    let (item, rest) = parse_one(data, 0)?;
    rest.is_empty().then_some(item)
}

fn parse_one(data: &[u8], depth: usize) -> Option<(Item, &[u8])> {
    if depth > 32 {
        return None;
    }
    let (&b, rest) = data.split_first()?;
    let (list, len, rest) = match b {
        0x00..=0x7f => return Some((Item::Bytes(vec![b]), rest)),
        0x80..=0xb7 => (false, usize::from(b - 0x80), rest),
        0xb8..=0xbf => {
            let (len, rest) = long_len(rest, usize::from(b - 0xb7))?;
            (false, len, rest)
        }
        0xc0..=0xf7 => (true, usize::from(b - 0xc0), rest),
        0xf8..=0xff => {
            let (len, rest) = long_len(rest, usize::from(b - 0xf7))?;
            (true, len, rest)
        }
    };
    if rest.len() < len {
        return None;
    }
    let (body, rest) = rest.split_at(len);
    if !list {
        return Some((Item::Bytes(body.to_vec()), rest));
    }
    let mut items = Vec::new();
    let mut p = body;
    while !p.is_empty() {
        let (item, r) = parse_one(p, depth + 1)?;
        items.push(item);
        p = r;
    }
    Some((Item::List(items), rest))
}

fn long_len(data: &[u8], n: usize) -> Option<(usize, &[u8])> {
    if n > 4 || data.len() < n {
        return None;
    }
    let len = data[..n]
        .iter()
        .fold(0usize, |a, b| a << 8 | usize::from(*b));
    Some((len, &data[n..]))
}

/// Canonical encoding.
pub fn encode(item: &Item) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(item, &mut out);
    out
}

fn encode_into(item: &Item, out: &mut Vec<u8>) {
    match item {
        Item::Bytes(b) if b.len() == 1 && b[0] < 0x80 => out.push(b[0]),
        Item::Bytes(b) => {
            header(out, 0x80, b.len());
            out.extend_from_slice(b);
        }
        Item::List(items) => {
            let mut body = Vec::new();
            for i in items {
                encode_into(i, &mut body);
            }
            header(out, 0xc0, body.len());
            out.extend(body);
        }
    }
}

fn header(out: &mut Vec<u8>, base: u8, len: usize) {
    if len < 56 {
        out.push(base + len as u8);
    } else {
        let be = (len as u64).to_be_bytes();
        let skip = be.iter().take_while(|b| **b == 0).count();
        out.push(base + 55 + (8 - skip) as u8);
        out.extend_from_slice(&be[skip..]);
    }
}

/// Every node, depth first (the root is `[]`).
fn paths(item: &Item, at: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    out.push(at.clone());
    if let Item::List(items) = item {
        for (i, child) in items.iter().enumerate() {
            at.push(i);
            paths(child, at, out);
            at.pop();
        }
    }
}

fn node<'a>(item: &'a mut Item, path: &[usize]) -> &'a mut Item {
    match (path.split_first(), item) {
        (Some((i, rest)), Item::List(items)) => node(&mut items[*i], rest),
        (_, item) => item,
    }
}

/// One structural edit of the RLP item that is all of `data`; `None` if it is not RLP.
pub fn mutate(data: &[u8], rng: &mut Rng, room: usize) -> Option<Vec<u8>> {
    let mut root = parse(data)?;
    let mut all = Vec::new();
    paths(&root, &mut Vec::new(), &mut all);
    let path = all[rng.below(all.len())].clone();
    let donor = node(&mut root.clone(), &all[rng.below(all.len())]).clone();
    let target = node(&mut root, &path);
    match target {
        Item::Bytes(b) => match rng.below(5) {
            0 | 1 => *b = bytes(b, (b.len() * 2 + 8).min(room)),
            2 => {
                // An integer field: an edge value, minimal big-endian.
                let v = b.iter().take(8).fold(0u64, |a, x| a << 8 | u64::from(*x));
                let v = edge_u64(rng, v).to_be_bytes();
                let skip = v.iter().take_while(|x| **x == 0).count();
                *b = v[skip..].to_vec();
            }
            3 => *target = donor,
            _ => b.truncate(rng.below(b.len() + 1)),
        },
        Item::List(items) => match rng.below(4) {
            0 if !items.is_empty() => {
                items.remove(rng.below(items.len()));
            }
            1 if !items.is_empty() => {
                let i = rng.below(items.len());
                let copy = items[i].clone();
                items.insert(i, copy);
            }
            2 if items.len() > 1 => {
                let (i, j) = (rng.below(items.len()), rng.below(items.len()));
                items.swap(i, j);
            }
            _ => items.push(donor),
        },
    }
    let out = encode(&root);
    (out.len() <= room).then_some(out)
}
