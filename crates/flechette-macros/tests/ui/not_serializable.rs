struct Pool;

#[flechette::cached]
async fn query(pool: Pool, id: u64) -> u64 {
    let _ = pool;
    id
}

fn main() {}
