//! The expansion of `#[cached]`: the function keeps its signature and calls
//! through a `CachedFn` kept in a static, reachable with `<name>_cached()`.

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, Pat, PathArguments, ReturnType, Type};

use crate::options::{Options, error, fnv1a};

/// A parameter of the wrapped function.
struct Param {
    ident: Ident,
    mutable: bool,
    ty: Type,
    ignored: bool,
}

/// The output type, split into value and error when it is a `Result`.
struct Output {
    value: Type,
    error: Option<Type>,
    whole: Type,
}

const SELF_OWNED: &str = "__flechette_self_owned";
const SELF_REF: &str = "__flechette_self";

pub(crate) fn expand(options: Options, item: ItemFn) -> syn::Result<TokenStream> {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        return Err(error(
            sig.fn_token.span(),
            "#[cached] needs an `async fn`: cached calls are awaited",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(error(
            sig.generics.span(),
            "#[cached] does not support generic functions: the cached function has one argument type",
        ));
    }
    let method = receiver(&item)?;
    let params = params(&item, &options)?;
    check_ignored(&options, &params, method)?;
    let output = output(&sig.output)?;
    let keyed_self = method && !options.ignore.iter().any(|i| i == "self");

    let fn_name = &sig.ident;
    let helper = format_ident!("{}_cached", fn_name);
    let name = options
        .name
        .as_ref()
        .map_or_else(|| fn_name.to_string(), syn::LitStr::value);
    // A method's default name carries its type, so that methods of one name
    // on two types in one module do not share keys.
    let name_expr = if method && options.name.is_none() {
        quote!(::std::format!("{}::{}", ::std::any::type_name::<Self>(), #name))
    } else {
        quote!(#name)
    };
    let key_types: Vec<TokenStream> = keyed_self
        .then(|| quote!(Self))
        .into_iter()
        .chain(params.iter().filter(|p| !p.ignored).map(|p| {
            let ty = &p.ty;
            quote!(#ty)
        }))
        .collect();
    let key_names: Vec<String> = keyed_self
        .then(|| "self".to_owned())
        .into_iter()
        .chain(
            params
                .iter()
                .filter(|p| !p.ignored)
                .map(|p| p.ident.to_string()),
        )
        .collect();
    let value = &output.value;
    let err = output
        .error
        .as_ref()
        .map_or_else(|| quote!(::std::convert::Infallible), |e| quote!(#e));
    let cached_ty = quote!(::flechette::CachedFn<(#(#key_types,)*), #value, #err>);

    let self_owned = Ident::new(SELF_OWNED, Span::call_site());
    let self_ref = Ident::new(SELF_REF, Span::call_site());
    let key_patterns: Vec<TokenStream> = keyed_self
        .then(|| quote!(#self_owned))
        .into_iter()
        .chain(params.iter().filter(|p| !p.ignored).map(|p| {
            let ident = &p.ident;
            if p.mutable {
                quote!(mut #ident)
            } else {
                quote!(#ident)
            }
        }))
        .collect();
    let bind_self = method.then(|| quote!(let #self_ref = &#self_owned;));
    let block = quote::ToTokens::to_token_stream(&item.block);
    let body = if method { replace_self(block) } else { block };
    let whole = &output.whole;
    // The body as a closure of the key values: the wrapped function's, or
    // each call's own when it needs values outside the key.
    let result = if output.error.is_some() {
        quote!(__flechette_out)
    } else {
        quote!(::core::result::Result::Ok::<#whole, ::std::convert::Infallible>(__flechette_out))
    };
    let closure = quote! {
        move |(#(#key_patterns,)*): (#(#key_types,)*)| async move {
            #bind_self
            let __flechette_out: #whole = async move #body.await;
            #result
        }
    };
    // Without ignored parameters the body needs nothing but the key, so the
    // helper carries it and every method of a `CachedFn` works on it.
    let bound = (!method || keyed_self) && params.iter().all(|p| !p.ignored);
    let finish = if bound {
        quote!(.build_fallible::<#err, _, _>(#closure))
    } else {
        quote!(.build_unbound::<#err>())
    };
    let builder = builder(
        &options, &item, &name_expr, &key_types, &key_names, value, &finish,
    );
    let vis = &item.vis;
    let helper_doc = format!(
        "The cached function behind [`{fn_name}`]: its key, stored calls, statistics and invalidation."
    );
    let helper_fn = if method {
        quote! {
            #[doc = #helper_doc]
            #vis fn #helper() -> &'static #cached_ty {
                static SLOT: ::flechette::__private::Slot = ::flechette::__private::Slot::new();
                SLOT.get_or_init(|| #builder)
            }
        }
    } else {
        quote! {
            #[doc = #helper_doc]
            #vis fn #helper() -> &'static #cached_ty {
                static CACHED: ::std::sync::LazyLock<#cached_ty> = ::std::sync::LazyLock::new(|| #builder);
                &CACHED
            }
        }
    };

    let key_values = keyed_self
        .then(|| quote!(::std::clone::Clone::clone(self)))
        .into_iter()
        .chain(params.iter().filter(|p| !p.ignored).map(|p| {
            let ident = &p.ident;
            quote!(#ident)
        }));
    let capture_self = (method && !keyed_self)
        .then(|| quote!(let #self_owned = ::std::clone::Clone::clone(self);));
    let helper_path = if method {
        quote!(Self::#helper)
    } else {
        quote!(#helper)
    };
    let call = if bound {
        quote!(#helper_path().call((#(#key_values,)*)))
    } else {
        quote!(#helper_path().call_fn((#(#key_values,)*), #closure))
    };
    let run = if output.error.is_some() {
        quote!(#call.await.map_err(::flechette::CallError::into_error))
    } else {
        let panic_msg = format!("cached function `{name}`: {{}}");
        quote!(#call.await.unwrap_or_else(|e| ::core::panic!(#panic_msg, e)))
    };
    let attrs = &item.attrs;
    let sig = &item.sig;
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #capture_self
            #run
        }

        #helper_fn
    })
}

/// Whether the function is a method (`&self`); other receivers are errors.
fn receiver(item: &ItemFn) -> syn::Result<bool> {
    let Some(receiver) = item.sig.receiver() else {
        return Ok(false);
    };
    if receiver.reference.is_none() || receiver.mutability.is_some() {
        return Err(error(
            receiver.span(),
            "#[cached] methods take `&self`: the receiver is cloned into the computation (and into the key unless ignored)",
        ));
    }
    Ok(true)
}

fn params(item: &ItemFn, options: &Options) -> syn::Result<Vec<Param>> {
    let mut out = Vec::new();
    for arg in &item.sig.inputs {
        let FnArg::Typed(typed) = arg else { continue };
        let Pat::Ident(pat) = &*typed.pat else {
            return Err(error(
                typed.pat.span(),
                "#[cached] parameters must be plain names (`x: T`), so they can name key columns",
            ));
        };
        if pat.by_ref.is_some() || pat.subpat.is_some() {
            return Err(error(
                pat.span(),
                "#[cached] parameters must be plain names",
            ));
        }
        out.push(Param {
            ident: pat.ident.clone(),
            mutable: pat.mutability.is_some(),
            ty: (*typed.ty).clone(),
            ignored: options.ignore.contains(&pat.ident),
        });
    }
    Ok(out)
}

fn check_ignored(options: &Options, params: &[Param], method: bool) -> syn::Result<()> {
    for name in &options.ignore {
        let known = params.iter().any(|p| p.ident == *name) || (method && name == "self");
        if !known {
            return Err(error(
                name.span(),
                format!("ignore({name}): the function has no parameter `{name}`"),
            ));
        }
    }
    Ok(())
}

fn output(ret: &ReturnType) -> syn::Result<Output> {
    let whole: Type = match ret {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    if let Type::Path(path) = &whole
        && let Some(last) = path.path.segments.last()
        && last.ident == "Result"
        && let PathArguments::AngleBracketed(args) = &last.arguments
        && args.args.len() == 2
        && let (Some(GenericArgument::Type(value)), Some(GenericArgument::Type(error))) =
            (args.args.first(), args.args.last())
    {
        return Ok(Output {
            value: value.clone(),
            error: Some(error.clone()),
            whole: whole.clone(),
        });
    }
    if let Type::Path(path) = &whole
        && path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Result")
    {
        return Err(error(
            whole.span(),
            "#[cached] caches only the `Ok` of a `Result`: write the return type as `Result<T, E>` in full, so the error type is known",
        ));
    }
    Ok(Output {
        value: whole.clone(),
        error: None,
        whole,
    })
}

#[allow(clippy::too_many_arguments)]
fn builder(
    options: &Options,
    item: &ItemFn,
    name: &TokenStream,
    key_types: &[TokenStream],
    key_names: &[String],
    value: &Type,
    finish: &TokenStream,
) -> TokenStream {
    let module = options
        .module
        .as_ref()
        .map_or_else(|| quote!(::core::module_path!()), |m| quote!(#m));
    let mut steps = Vec::new();
    let version = match (&options.version, options.hash_code) {
        (version, true) => {
            let code = quote::ToTokens::to_token_stream(&item.block).to_string();
            let base = version.as_ref().map(syn::LitStr::value).unwrap_or_default();
            Some(format!("{base}#{:016x}", fnv1a(&code)))
        }
        (Some(v), false) => Some(v.value()),
        (None, false) => None,
    };
    if let Some(v) = version {
        steps.push(quote!(.version(#v)));
    }
    let millis = |d: &std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if let Some(d) = &options.update_after {
        let ms = millis(d);
        steps.push(quote!(.update_after(::std::time::Duration::from_millis(#ms))));
    }
    if let Some(d) = &options.expire_after {
        let ms = millis(d);
        steps.push(quote!(.expire_after(::std::time::Duration::from_millis(#ms))));
    }
    if let Some(d) = &options.timeout {
        let ms = millis(d);
        steps.push(quote!(.timeout(::std::time::Duration::from_millis(#ms))));
    }
    if let Some(d) = &options.warn_after {
        let ms = millis(d);
        steps.push(quote!(.warn_after(::std::time::Duration::from_millis(#ms))));
    }
    if options.write_through {
        steps.push(quote!(.write_through(true)));
    }
    if options.skip_none {
        steps.push(quote!(.skip_none()));
    }
    if let Some(c) = &options.capacity {
        steps.push(quote!(.capacity(#c)));
    }
    if let Some(c) = &options.cache {
        steps.push(quote_spanned!(c.span()=> .cache(#c)));
    }
    if let Some(l) = &options.lifespan {
        steps.push(quote_spanned!(l.span()=> .lifespan(#l)));
    }
    // Typed, so that a function whose every parameter is ignored (a
    // constant key) names no arguments and still compiles.
    let arity = key_names.len();
    quote! {
        ::flechette::CachedFn::builder::<(#(#key_types,)*), #value>(#name)
            .module(#module)
            .args::<[&'static str; #arity], &'static str>([#(#key_names),*])
            #(#steps)*
            #finish
    }
}

/// Renames `self` to the bound receiver inside a method body.
fn replace_self(tokens: TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Ident(ident) if ident == "self" => {
                TokenTree::Ident(Ident::new(SELF_REF, ident.span()))
            }
            TokenTree::Group(group) => {
                let mut renamed = Group::new(group.delimiter(), replace_self(group.stream()));
                renamed.set_span(group.span());
                TokenTree::Group(renamed)
            }
            other => other,
        })
        .collect()
}
