type Result<T> = std::result::Result<T, String>;

#[flechette::cached]
async fn parse(text: String) -> Result<u64> {
    text.parse().map_err(|_| text)
}

fn main() {}
