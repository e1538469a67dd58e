//! JSON-aware mutation: parse, change one value, serialize. Hex strings (`0x…`, as geth and
//! Bee write bytes) are mutated as the bytes they stand for.

use serde_json::{Map, Number, Value};

use crate::{Rng, bytes, edge_u64};

/// Every value's path, depth first (keys and indices as strings; the root is `[]`).
fn paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                at.push(k.clone());
                paths(child, at, out);
                at.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                at.push(i.to_string());
                paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn node<'a>(v: &'a mut Value, path: &[String]) -> Option<&'a mut Value> {
    let Some((k, rest)) = path.split_first() else {
        return Some(v);
    };
    match v {
        Value::Object(m) => node(m.get_mut(k)?, rest),
        Value::Array(a) => node(a.get_mut(k.parse::<usize>().ok()?)?, rest),
        _ => None,
    }
}

fn string(s: &str, room: usize) -> String {
    if let Some(h) = s.strip_prefix("0x")
        && let Ok(b) = hex::decode(h)
    {
        return format!(
            "0x{}",
            hex::encode(bytes(&b, (b.len() * 2 + 8).min(room / 2)))
        );
    }
    if let Ok(b) = hex::decode(s)
        && !s.is_empty()
    {
        return hex::encode(bytes(&b, (b.len() * 2 + 8).min(room / 2)));
    }
    String::from_utf8_lossy(&bytes(s.as_bytes(), (s.len() * 2 + 8).min(room))).into_owned()
}

fn number(n: &Number, rng: &mut Rng) -> Value {
    match rng.below(6) {
        0 => Value::from(-1),
        1 => serde_json::Number::from_f64(0.5).map_or(Value::Null, Value::Number),
        2 => Value::String(n.to_string()),
        _ => Value::from(edge_u64(rng, n.as_u64().unwrap_or(0))),
    }
}

/// One edit of the JSON document that is all of `data`; `None` if it is not JSON.
pub fn mutate(data: &[u8], rng: &mut Rng, room: usize) -> Option<Vec<u8>> {
    let mut root: Value = serde_json::from_slice(data).ok()?;
    let mut all = Vec::new();
    paths(&root, &mut Vec::new(), &mut all);
    let path = all[rng.below(all.len())].clone();
    let donor = node(&mut root.clone(), &all[rng.below(all.len())])?.clone();
    let target = node(&mut root, &path)?;
    match target {
        Value::String(s) => match rng.below(4) {
            0 => *target = donor,
            1 => s.clear(),
            _ => *s = string(s, room),
        },
        Value::Number(n) => *target = number(&n.clone(), rng),
        Value::Bool(b) => *b = !*b,
        Value::Null => *target = donor,
        Value::Object(m) => match rng.below(3) {
            0 if !m.is_empty() => {
                let k = m.keys().nth(rng.below(m.len()))?.clone();
                m.remove(&k);
            }
            1 if !m.is_empty() => {
                let k = m.keys().nth(rng.below(m.len()))?.clone();
                m.insert(k, donor);
            }
            _ => {
                let mut extra = Map::new();
                extra.insert(format!("x{}", rng.below(4)), donor);
                m.extend(extra);
            }
        },
        Value::Array(a) => match rng.below(3) {
            0 if !a.is_empty() => {
                a.remove(rng.below(a.len()));
            }
            1 if !a.is_empty() => {
                let i = rng.below(a.len());
                let copy = a[i].clone();
                a.insert(i, copy);
            }
            _ => a.push(donor),
        },
    }
    let out = serde_json::to_vec(&root).ok()?;
    (out.len() <= room).then_some(out)
}
