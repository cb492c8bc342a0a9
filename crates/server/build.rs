//! Compiles flagd's sync protocol (proto/flagd/sync/v1/sync.proto) into the
//! server's gRPC service, with a protobuf compiler written in Rust (no
//! `protoc` to install).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = protox::compile(["flagd/sync/v1/sync.proto"], ["proto"])?;
    tonic_prost_build::configure().build_client(false).compile_fds(files)?;
    Ok(())
}
