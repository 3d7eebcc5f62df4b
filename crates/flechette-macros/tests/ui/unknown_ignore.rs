#[flechette::cached(ignore(pool))]
async fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
