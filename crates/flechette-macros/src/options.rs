//! The options of `#[cached(...)]`, parsed and checked at compile time.

use std::time::Duration;

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::{Expr, Ident, LitInt, LitStr};

/// Everything `#[cached(...)]` was told.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) name: Option<LitStr>,
    pub(crate) module: Option<LitStr>,
    pub(crate) version: Option<LitStr>,
    pub(crate) update_after: Option<Duration>,
    pub(crate) expire_after: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) warn_after: Option<Duration>,
    pub(crate) skip_none: bool,
    pub(crate) write_through: bool,
    pub(crate) capacity: Option<LitInt>,
    pub(crate) cache: Option<Expr>,
    pub(crate) lifespan: Option<Expr>,
    pub(crate) ignore: Vec<Ident>,
    pub(crate) hash_code: bool,
}

const KNOWN: &str = "name, module, version, update_after, expire_after, timeout, warn_after, capacity, cache, lifespan, skip_none, write_through, ignore(...), hash_code";

impl Options {
    /// Takes one `key = value`, `key(...)` or `key` of the attribute.
    pub(crate) fn parse(&mut self, meta: ParseNestedMeta<'_>) -> syn::Result<()> {
        let Some(key) = meta.path.get_ident().map(Ident::to_string) else {
            return Err(meta.error(format!("unknown option: expected one of {KNOWN}")));
        };
        match key.as_str() {
            "name" => self.name = Some(meta.value()?.parse()?),
            "module" => self.module = Some(meta.value()?.parse()?),
            "version" => self.version = Some(meta.value()?.parse()?),
            "update_after" => self.update_after = Some(duration(meta.value()?.parse()?)?),
            "expire_after" => self.expire_after = Some(duration(meta.value()?.parse()?)?),
            "timeout" => self.timeout = Some(duration(meta.value()?.parse()?)?),
            "warn_after" => self.warn_after = Some(duration(meta.value()?.parse()?)?),
            "skip_none" => self.skip_none = true,
            "write_through" => self.write_through = true,
            "capacity" => self.capacity = Some(meta.value()?.parse()?),
            "cache" => self.cache = Some(meta.value()?.parse()?),
            "lifespan" => self.lifespan = Some(meta.value()?.parse()?),
            "hash_code" => self.hash_code = true,
            "ignore" => meta.parse_nested_meta(|inner| {
                let name = inner
                    .path
                    .get_ident()
                    .cloned()
                    .ok_or_else(|| inner.error("ignore(...) takes parameter names"))?;
                self.ignore.push(name);
                Ok(())
            })?,
            other => {
                return Err(
                    meta.error(format!("unknown option `{other}`: expected one of {KNOWN}"))
                );
            }
        }
        Ok(())
    }
}

/// A human duration: one or more `<number><unit>` with units `ms`, `s`,
/// `m`, `h`, `d` — `"500ms"`, `"10m"`, `"1h30m"`.
fn duration(lit: LitStr) -> syn::Result<Duration> {
    parse_duration(&lit.value()).map_err(|why| {
        syn::Error::new(
            lit.span(),
            format!("bad duration {:?}: {why} (write e.g. \"500ms\", \"10s\", \"10m\", \"1h30m\", \"2d\")", lit.value()),
        )
    })
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("it is empty");
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err("a number must come first");
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| "the number is too large")?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err("a unit must follow the number"),
            _ => return Err("unknown unit"),
        };
        rest = &rest[unit_len..];
        let ms = n.checked_mul(unit_ms).ok_or("the duration is too large")?;
        total = total
            .checked_add(Duration::from_millis(ms))
            .ok_or("the duration is too large")?;
    }
    Ok(total)
}

/// A stable 64-bit FNV-1a hash, for `hash_code`.
pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An error at the call site of the attribute.
pub(crate) fn error(span: Span, message: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(span, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ten minutes").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("").is_err());
    }
}
