//! Python NuroPb's `examples/scripted_mesh_setup.py`: makes a mesh ready — the vhost (through
//! RabbitMQ's management API), the rpc, events and dead-letter exchanges, the dead-letter queue.
//! Idempotent. On the embedded broker (no `NUROPB_AMQP_URL`) every vhost exists already.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    nuropb_tokio::examples::init_tracing();
    let mesh =
        nuropb_tokio::examples::ExampleMesh::start(nuropb_tokio::TokioRuntime::shared()).await?;
    println!("mesh ready on {}", mesh.settings);
    Ok(())
}
