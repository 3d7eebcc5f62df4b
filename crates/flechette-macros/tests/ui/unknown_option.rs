#[flechette::cached(refresh = "10m")]
async fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
