#[flechette::cached(update_after = "ten minutes")]
async fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
