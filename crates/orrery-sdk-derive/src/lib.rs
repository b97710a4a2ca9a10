//! `#[derive(OrreryType)]`: a Rust struct or enum as an Orrery type, for the provider SDK.
//!
//! The derive writes `impl orrery_sdk::OrreryType`:
//! - a struct with named fields is a `Product` of its fields, in declaration order;
//! - a unit struct (or one with no fields) is the empty `Product`, Orrery's unit;
//! - a tuple struct with one field is its field's type (a newtype adds no layer);
//! - an enum is a `Union` of its variants, named as in Rust: a unit variant carries the
//!   unit, a one-field tuple variant carries its field's type, a variant with named
//!   fields carries a `Product` of them.
//!
//! Generic types and tuple structs or variants of more than one field are refused with a
//! compile error that says so. Field and variant names must be valid Orrery names
//! (a letter, then letters, digits or `_`), which Rust's usual names are.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, FieldsNamed, Ident};

/// Derives `orrery_sdk::OrreryType` for a struct or an enum (see the crate docs for the
/// mapping).
#[proc_macro_derive(OrreryType)]
pub fn derive_orrery_type(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// The three methods of the impl for one type.
struct Methods {
    ctype: Tokens,
    into_value: Tokens,
    from_value: Tokens,
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(
            input.generics.span(),
            "OrreryType cannot be derived for generic types; implement it by hand",
        ));
    }
    let name = &input.ident;
    let methods = match &input.data {
        Data::Struct(data) => struct_methods(name, &data.fields)?,
        Data::Enum(data) => enum_methods(name, data)?,
        Data::Union(data) => {
            return Err(syn::Error::new(
                data.union_token.span,
                "OrreryType cannot be derived for Rust unions; use an enum",
            ))
        }
    };
    let Methods {
        ctype,
        into_value,
        from_value,
    } = methods;
    Ok(quote! {
        impl ::orrery_sdk::OrreryType for #name {
            fn ctype() -> ::orrery_sdk::types::CType {
                #ctype
            }
            fn into_value(self) -> ::orrery_sdk::types::CValue {
                #into_value
            }
            fn from_value(
                value: ::orrery_sdk::types::CValue,
            ) -> ::core::result::Result<Self, ::orrery_sdk::ValueError> {
                #from_value
            }
        }
    })
}

fn struct_methods(name: &Ident, fields: &Fields) -> syn::Result<Methods> {
    match fields {
        Fields::Named(named) => {
            let product = NamedProduct::new(named);
            let bindings = product.bindings();
            Ok(Methods {
                ctype: product.ctype(),
                into_value: {
                    let value = product.value();
                    quote! {
                        let #name { #(#bindings),* } = self;
                        #value
                    }
                },
                from_value: {
                    let read = product.read(quote!(value));
                    quote! {
                        #read
                        ::core::result::Result::Ok(#name { #(#bindings),* })
                    }
                },
            })
        }
        Fields::Unit => Ok(Methods {
            ctype: quote!(::orrery_sdk::types::CType::Product(::std::vec::Vec::new())),
            into_value: quote!(::orrery_sdk::types::CValue::Product(::std::vec::Vec::new())),
            from_value: quote! {
                match value {
                    ::orrery_sdk::types::CValue::Product(_) => ::core::result::Result::Ok(#name),
                    other => ::core::result::Result::Err(::orrery_sdk::ValueError::new(
                        "",
                        ::std::format!("expected the unit record, found {}", other.kind_name()),
                    )),
                }
            },
        }),
        Fields::Unnamed(unnamed) => {
            let field = single_field(unnamed)?;
            let ty = &field.ty;
            Ok(Methods {
                ctype: quote!(<#ty as ::orrery_sdk::OrreryType>::ctype()),
                into_value: quote!(::orrery_sdk::OrreryType::into_value(self.0)),
                from_value: quote! {
                    <#ty as ::orrery_sdk::OrreryType>::from_value(value).map(#name)
                },
            })
        }
    }
}

fn enum_methods(name: &Ident, data: &syn::DataEnum) -> syn::Result<Methods> {
    if data.variants.is_empty() {
        return Err(syn::Error::new(
            name.span(),
            "OrreryType needs at least one variant: an Orrery union is never empty",
        ));
    }
    let mut types = Vec::new();
    let mut encode_arms = Vec::new();
    let mut decode_arms = Vec::new();
    for variant in &data.variants {
        let ident = &variant.ident;
        let label = ident.to_string();
        match &variant.fields {
            Fields::Unit => {
                types.push(quote! {
                    (::std::string::String::from(#label),
                     ::orrery_sdk::types::CType::Product(::std::vec::Vec::new()))
                });
                encode_arms.push(quote! {
                    #name::#ident => ::orrery_sdk::types::CValue::union(
                        #label,
                        ::orrery_sdk::types::CValue::Product(::std::vec::Vec::new()),
                    )
                });
                decode_arms.push(quote!(#label => ::core::result::Result::Ok(#name::#ident)));
            }
            Fields::Unnamed(unnamed) => {
                let ty = &single_field(unnamed)?.ty;
                types.push(quote! {
                    (::std::string::String::from(#label),
                     <#ty as ::orrery_sdk::OrreryType>::ctype())
                });
                encode_arms.push(quote! {
                    #name::#ident(inner) => ::orrery_sdk::types::CValue::union(
                        #label,
                        ::orrery_sdk::OrreryType::into_value(inner),
                    )
                });
                decode_arms.push(quote! {
                    #label => <#ty as ::orrery_sdk::OrreryType>::from_value(*inner)
                        .map(#name::#ident)
                        .map_err(|error| error.at_field(#label))
                });
            }
            Fields::Named(named) => {
                let product = NamedProduct::new(named);
                let bindings = product.bindings();
                let ctype = product.ctype();
                let value = product.value();
                let read = product.read(quote!(*inner));
                types.push(quote!((::std::string::String::from(#label), #ctype)));
                encode_arms.push(quote! {
                    #name::#ident { #(#bindings),* } => {
                        ::orrery_sdk::types::CValue::union(#label, #value)
                    }
                });
                decode_arms.push(quote! {
                    #label => (|| {
                        #read
                        ::core::result::Result::Ok(#name::#ident { #(#bindings),* })
                    })()
                    .map_err(|error: ::orrery_sdk::ValueError| error.at_field(#label))
                });
            }
        }
    }
    Ok(Methods {
        ctype: quote!(::orrery_sdk::types::CType::Union(::std::vec![#(#types),*])),
        into_value: quote!(match self { #(#encode_arms),* }),
        from_value: quote! {
            match value {
                ::orrery_sdk::types::CValue::Union(variant, inner) => match variant.as_str() {
                    #(#decode_arms,)*
                    other => ::core::result::Result::Err(::orrery_sdk::ValueError::new(
                        "",
                        ::std::format!("unknown variant `{other}`"),
                    )),
                },
                other => ::core::result::Result::Err(::orrery_sdk::ValueError::new(
                    "",
                    ::std::format!("expected a union, found {}", other.kind_name()),
                )),
            }
        },
    })
}

/// The one field of a newtype struct or variant; more is refused.
fn single_field(fields: &syn::FieldsUnnamed) -> syn::Result<&syn::Field> {
    match fields.unnamed.len() {
        1 => Ok(&fields.unnamed[0]),
        _ => Err(syn::Error::new(
            fields.span(),
            "OrreryType supports tuple structs and variants of exactly one field; name the fields to make a record",
        )),
    }
}

/// Named fields as an Orrery `Product`: its type, its value from bindings of the same
/// names, and reading it back into those bindings.
struct NamedProduct<'a> {
    fields: Vec<(&'a Ident, &'a syn::Type, String)>,
}

impl<'a> NamedProduct<'a> {
    fn new(named: &'a FieldsNamed) -> Self {
        let fields = named
            .named
            .iter()
            .filter_map(|field| {
                let ident = field.ident.as_ref()?;
                let label = ident.to_string();
                let label = label.strip_prefix("r#").unwrap_or(&label).to_string();
                Some((ident, &field.ty, label))
            })
            .collect();
        NamedProduct { fields }
    }

    fn bindings(&self) -> Vec<&'a Ident> {
        self.fields.iter().map(|(ident, _, _)| *ident).collect()
    }

    fn ctype(&self) -> Tokens {
        let entries = self.fields.iter().map(|(_, ty, label)| {
            quote! {
                (::std::string::String::from(#label), <#ty as ::orrery_sdk::OrreryType>::ctype())
            }
        });
        quote!(::orrery_sdk::types::CType::Product(
            ::std::vec![#(#entries),*]
        ))
    }

    /// The product's value, built from local bindings named like the fields.
    fn value(&self) -> Tokens {
        let entries = self.fields.iter().map(|(ident, _, label)| {
            quote! {
                (::std::string::String::from(#label), ::orrery_sdk::OrreryType::into_value(#ident))
            }
        });
        quote!(::orrery_sdk::types::CValue::Product(
            ::std::vec![#(#entries),*]
        ))
    }

    /// Statements that read `source` as the product into local bindings named like the
    /// fields (returning a `ValueError` from the enclosing function when they cannot).
    fn read(&self, source: Tokens) -> Tokens {
        let reads = self.fields.iter().map(|(ident, ty, label)| {
            quote! {
                let #ident = {
                    let position = fields
                        .iter()
                        .position(|(name, _)| name == #label)
                        .ok_or_else(|| ::orrery_sdk::ValueError::new(
                            "",
                            ::std::format!("missing field `{}`", #label),
                        ))?;
                    let (_, field) = fields.swap_remove(position);
                    <#ty as ::orrery_sdk::OrreryType>::from_value(field)
                        .map_err(|error| error.at_field(#label))?
                };
            }
        });
        quote! {
            let mut fields = match #source {
                ::orrery_sdk::types::CValue::Product(fields) => fields,
                other => return ::core::result::Result::Err(::orrery_sdk::ValueError::new(
                    "",
                    ::std::format!("expected a record, found {}", other.kind_name()),
                )),
            };
            #(#reads)*
        }
    }
}
