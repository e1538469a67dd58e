//! Protobuf-aware mutation: split the message into fields (nested messages too), change
//! one, re-encode with minimal varints.

use crate::{Rng, bytes, edge_u64};

/// A field's value.
#[derive(Clone, Debug)]
enum Value {
    Varint(u64),
    Fixed64([u8; 8]),
    Fixed32([u8; 4]),
    Bytes(Vec<u8>),
    Message(Vec<Field>),
}

#[derive(Clone, Debug)]
struct Field {
    number: u64,
    value: Value,
}

fn varint(p: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = p.split_first()?;
        *p = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn parse(data: &[u8], depth: usize) -> Option<Vec<Field>> {
    let mut p = data;
    let mut fields = Vec::new();
    while !p.is_empty() {
        let key = varint(&mut p)?;
        let number = key >> 3;
        if number == 0 {
            return None;
        }
        let value = match key & 7 {
            0 => Value::Varint(varint(&mut p)?),
            1 => {
                let (b, rest) = p.split_first_chunk::<8>()?;
                p = rest;
                Value::Fixed64(*b)
            }
            5 => {
                let (b, rest) = p.split_first_chunk::<4>()?;
                p = rest;
                Value::Fixed32(*b)
            }
            2 => {
                let len = usize::try_from(varint(&mut p)?).ok()?;
                if p.len() < len {
                    return None;
                }
                let (b, rest) = p.split_at(len);
                p = rest;
                // A nested message when it parses as one (and is not trivially short).
                match (depth < 8 && b.len() >= 2)
                    .then(|| parse(b, depth + 1))
                    .flatten()
                {
                    Some(f) if !f.is_empty() => Value::Message(f),
                    _ => Value::Bytes(b.to_vec()),
                }
            }
            _ => return None,
        };
        fields.push(Field { number, value });
    }
    Some(fields)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn encode(fields: &[Field], out: &mut Vec<u8>) {
    for f in fields {
        let wire = match f.value {
            Value::Varint(_) => 0,
            Value::Fixed64(_) => 1,
            Value::Fixed32(_) => 5,
            Value::Bytes(_) | Value::Message(_) => 2,
        };
        put_varint(out, f.number << 3 | wire);
        match &f.value {
            Value::Varint(v) => put_varint(out, *v),
            Value::Fixed64(b) => out.extend_from_slice(b),
            Value::Fixed32(b) => out.extend_from_slice(b),
            Value::Bytes(b) => {
                put_varint(out, b.len() as u64);
                out.extend_from_slice(b);
            }
            Value::Message(m) => {
                let mut body = Vec::new();
                encode(m, &mut body);
                put_varint(out, body.len() as u64);
                out.extend(body);
            }
        }
    }
}

/// Paths to every field: indices into nested messages.
fn paths(fields: &[Field], at: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    for (i, f) in fields.iter().enumerate() {
        at.push(i);
        out.push(at.clone());
        if let Value::Message(m) = &f.value {
            paths(m, at, out);
        }
        at.pop();
    }
}

/// The message holding the field at `path`, and the field's index in it.
fn parent<'a>(fields: &'a mut Vec<Field>, path: &[usize]) -> Option<(&'a mut Vec<Field>, usize)> {
    match path {
        [i] => Some((fields, *i)),
        [i, rest @ ..] => match &mut fields.get_mut(*i)?.value {
            Value::Message(m) => parent(m, rest),
            _ => None,
        },
        [] => None,
    }
}

/// One edit of the protobuf message that is all of `data`; `None` if it does not parse.
pub fn mutate(data: &[u8], rng: &mut Rng, room: usize) -> Option<Vec<u8>> {
    let mut root = parse(data, 0)?;
    let mut all = Vec::new();
    paths(&root, &mut Vec::new(), &mut all);
    if all.is_empty() {
        return None;
    }
    let path = all[rng.below(all.len())].clone();
    let (siblings, i) = parent(&mut root, &path)?;
    match rng.below(6) {
        0 => {
            siblings.remove(i);
        }
        1 => {
            let copy = siblings[i].clone();
            siblings.insert(i, copy);
        }
        2 if siblings.len() > 1 => {
            let j = rng.below(siblings.len());
            siblings.swap(i, j);
        }
        _ => match &mut siblings[i].value {
            Value::Varint(v) => *v = edge_u64(rng, *v),
            Value::Fixed64(b) => *b = edge_u64(rng, u64::from_le_bytes(*b)).to_le_bytes(),
            Value::Fixed32(b) => {
                *b = (edge_u64(rng, u64::from(u32::from_le_bytes(*b))) as u32).to_le_bytes()
            }
            Value::Bytes(b) => *b = bytes(b, (b.len() * 2 + 8).min(room)),
            Value::Message(m) => m.clear(),
        },
    }
    let mut out = Vec::new();
    encode(&root, &mut out);
    (out.len() <= room).then_some(out)
}
