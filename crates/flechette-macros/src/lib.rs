//! `#[cached]`: cache an async function or method with flechette.
//!
//! Use it through the `flechette` crate (`flechette::cached`), which
//! documents every option in its guide (docs/memoize.md).

mod expand;
mod options;

use proc_macro::TokenStream;
use syn::ItemFn;

/// Caches an `async fn` (or a `&self` method) with a flechette `CachedFn`.
///
/// The function keeps its signature. Its parameters, except those in
/// `ignore(...)`, form the key and must be owned, `Serialize`, `Send` and
/// `'static`; ignored parameters must be `Send + 'static`. A method's
/// receiver is cloned: it is part of the key (through `Serialize`) unless
/// `ignore(self)`. A function returning `Result<T, E>` caches only `Ok`,
/// and needs `E: Clone + From<flechette::Failure>`; any other function
/// panics if its computation times out or panics.
///
/// Options: `name = "..."`, `module = "..."`, `version = "..."`,
/// `update_after = "10m"`, `expire_after = "1h"`, `timeout = "30s"`,
/// `capacity = 1000`, `cache = <expr>`, `lifespan = <expr>`,
/// `ignore(param, ...)`, `hash_code`.
///
/// Next to the function, `<name>_cached()` returns the `&'static CachedFn`
/// behind it: digest, contains, load, query, invalidate, stats.
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut options = options::Options::default();
    let parser = syn::meta::parser(|meta| options.parse(meta));
    if let Err(e) = syn::parse::Parser::parse(parser, attr) {
        return e.to_compile_error().into();
    }
    let item = match syn::parse::<ItemFn>(item) {
        Ok(item) => item,
        Err(e) => {
            return syn::Error::new(e.span(), "#[cached] goes on an `async fn`")
                .to_compile_error()
                .into();
        }
    };
    expand::expand(options, item)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
