//! Staples dev node: a Swarm node speaking Bee's HTTP API on one machine.
//!
//! Not built yet (tracked as the "Swarm dev node" issue). The crate exists so the
//! workspace layout is fixed; it exposes nothing until the node is real.
