//! The protobuf shape of `staples.dag.v1.Message` (`specs/staples.proto`).
//!
//! Why hand-written prost structs and not `prost-build` in a build script: the schema is
//! one small message that changes rarely, and a build script would put a protobuf compiler
//! (protox and its parser stack) into every build of this crate, of the bridge and of the
//! fuzz targets, and hide the generated code from readers and reviewers. Instead the
//! `.proto` file stays the reference and a test compiles it with `protox` (a
//! dev-dependency, no system `protoc`) and checks that every field name, number, type and
//! label agrees with this struct, and that both encode the same bytes.
//!
//! This type is only the transport shape. Validation (lengths, order, signature) and the
//! canonical-encoding rule live in [`super::message`].

/// `staples.dag.v1.Message` as prost sees it. Field order follows the tag numbers.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WireMessage {
    /// Format version.
    #[prost(uint32, tag = "1")]
    pub version: u32,
    /// 32-byte chat id.
    #[prost(bytes = "vec", tag = "2")]
    pub chat_id: Vec<u8>,
    /// Lamport clock.
    #[prost(uint64, tag = "3")]
    pub clock: u64,
    /// Sender wall clock, Unix ms.
    #[prost(uint64, tag = "4")]
    pub timestamp: u64,
    /// Parent ids, 32 bytes each.
    #[prost(bytes = "vec", repeated, tag = "5")]
    pub parents: Vec<Vec<u8>>,
    /// Never a parent, never stored.
    #[prost(bool, tag = "6")]
    pub ephemeral: bool,
    /// Application payload.
    #[prost(bytes = "vec", tag = "7")]
    pub body: Vec<u8>,
    /// 65-byte recoverable signature.
    #[prost(bytes = "vec", tag = "8")]
    pub signature: Vec<u8>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use prost::Message as _;
    use prost_reflect::{DynamicMessage, Kind, ReflectMessage as _, Value};

    fn spec_pool() -> prost_reflect::DescriptorPool {
        let specs = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs");
        let mut compiler = protox::Compiler::new([specs]).expect("specs/ is readable");
        compiler
            .open_file("staples.proto")
            .expect("specs/staples.proto compiles");
        compiler.descriptor_pool()
    }

    fn sample() -> WireMessage {
        WireMessage {
            version: 1,
            chat_id: vec![2; 32],
            clock: 1_700_000_000_123,
            timestamp: 1_700_000_000_001,
            parents: vec![vec![5; 32], vec![6; 32]],
            ephemeral: true,
            body: b"hello".to_vec(),
            signature: vec![8; 65],
        }
    }

    #[test]
    fn proto_file_and_rust_types_agree() {
        let pool = spec_pool();
        let desc = pool
            .get_message_by_name("staples.dag.v1.Message")
            .expect("message staples.dag.v1.Message is declared");
        // (name, number, kind, repeated) as the prost attributes above declare them.
        let rust: [(&str, u32, Kind, bool); 8] = [
            ("version", 1, Kind::Uint32, false),
            ("chat_id", 2, Kind::Bytes, false),
            ("clock", 3, Kind::Uint64, false),
            ("timestamp", 4, Kind::Uint64, false),
            ("parents", 5, Kind::Bytes, true),
            ("ephemeral", 6, Kind::Bool, false),
            ("body", 7, Kind::Bytes, false),
            ("signature", 8, Kind::Bytes, false),
        ];
        assert_eq!(desc.fields().len(), rust.len(), "field count");
        for (name, number, kind, repeated) in rust {
            let f = desc
                .get_field_by_name(name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(f.number(), number, "{name} number");
            assert_eq!(f.kind(), kind, "{name} type");
            assert_eq!(f.is_list(), repeated, "{name} label");
        }

        // The table above could drift from the prost attributes, so also check the bytes:
        // the prost encoding, read through the .proto descriptor, has every value under the
        // right name, and the descriptor re-encodes it to the same bytes.
        let msg = sample();
        let bytes = msg.encode_to_vec();
        let dynamic = DynamicMessage::decode(desc.clone(), bytes.as_slice()).unwrap();
        let get = |n: &str| dynamic.get_field_by_name(n).unwrap().into_owned();
        assert_eq!(get("version"), Value::U32(msg.version));
        assert_eq!(get("chat_id"), Value::Bytes(msg.chat_id.clone().into()));
        assert_eq!(get("clock"), Value::U64(msg.clock));
        assert_eq!(get("timestamp"), Value::U64(msg.timestamp));
        assert_eq!(
            get("parents"),
            Value::List(
                msg.parents
                    .iter()
                    .map(|p| Value::Bytes(p.clone().into()))
                    .collect()
            )
        );
        assert_eq!(get("ephemeral"), Value::Bool(msg.ephemeral));
        assert_eq!(get("body"), Value::Bytes(msg.body.clone().into()));
        assert_eq!(get("signature"), Value::Bytes(msg.signature.clone().into()));
        assert_eq!(dynamic.encode_to_vec(), bytes);
        assert_eq!(dynamic.descriptor().full_name(), "staples.dag.v1.Message");
    }
}
