//! Integration tests of the gateway agent through its public boundaries: real HTTP over
//! loopback to a real (tiny) upstream, a stand-in management server speaking the agent
//! protocol, Redis on 127.0.0.1:6379, and the limiter against a reference model.

mod access_log;
mod binary;
mod bounds;
mod cors;
mod decisions;
mod decisions_grpc;
mod failures;
mod harness;
mod http2;
mod limiter;
mod limits;
mod mocks;
mod paths;
mod proxy;
mod ratelimit;
mod redis;
mod reports;
mod routing;
mod sync;
mod tls;
mod traces;
mod upgrades;
mod upstream_answers;
mod usage;
mod workers;
