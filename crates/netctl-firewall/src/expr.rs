//! Small constructors over the `nftables` crate's JSON schema types, so the rule and element
//! code reads like the nft text it produces. Everything is owned (`'static`).

use std::borrow::Cow;
use std::collections::HashSet;

use nftables::expr::{
    BinaryOperation, CT, Expression, Fib, FibFlag, FibResult, Map, Meta, MetaKey, NamedExpression,
    Payload, PayloadField, Prefix,
};
use nftables::stmt::{Mangle, Match, NAT, NATFamily, Operator, Statement};

pub(crate) type Expr = Expression<'static>;
pub(crate) type Stmt = Statement<'static>;

pub(crate) fn string(text: impl Into<String>) -> Expr {
    Expression::String(Cow::Owned(text.into()))
}

pub(crate) fn number(value: u32) -> Expr {
    Expression::Number(value)
}

/// `@name`: a reference to a named set or map.
pub(crate) fn set_ref(name: &str) -> Expr {
    string(format!("@{name}"))
}

pub(crate) fn meta(key: MetaKey) -> Expr {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

/// `ip saddr`, `ip6 daddr`, `th dport`, ...
pub(crate) fn payload(protocol: &'static str, field: &'static str) -> Expr {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

pub(crate) fn ct(key: &'static str) -> Expr {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Borrowed(key),
        family: None,
        dir: None,
    }))
}

/// `a . b . c`; a single part stays itself.
pub(crate) fn concat(mut parts: Vec<Expr>) -> Expr {
    if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Expression::Named(NamedExpression::Concat(parts))
    }
}

pub(crate) fn prefix(addr: String, len: u8) -> Expr {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(string(addr)),
        len: u32::from(len),
    }))
}

/// `key map @name`: the value stored under the packet's key.
pub(crate) fn map_lookup(key: Expr, map: &str) -> Expr {
    Expression::Named(NamedExpression::Map(Box::new(Map {
        key,
        data: set_ref(map),
    })))
}

/// `fib daddr type`.
pub(crate) fn fib_daddr_type() -> Expr {
    Expression::Named(NamedExpression::Fib(Fib {
        result: FibResult::Type,
        flags: HashSet::from([FibFlag::Daddr]),
    }))
}

pub(crate) fn matches(left: Expr, op: Operator, right: Expr) -> Stmt {
    Statement::Match(Match { left, right, op })
}

pub(crate) fn eq(left: Expr, right: Expr) -> Stmt {
    matches(left, Operator::EQ, right)
}

pub(crate) fn ne(left: Expr, right: Expr) -> Stmt {
    matches(left, Operator::NEQ, right)
}

/// `ct state`/`ct status` flag tests are written with `in` in nft's JSON.
pub(crate) fn has_flags(left: Expr, flags: &[&'static str]) -> Stmt {
    let right = match flags {
        [one] => string(*one),
        many => Expression::List(many.iter().map(|f| string(*f)).collect()),
    };
    matches(left, Operator::IN, right)
}

/// `meta mark & bit == bit`.
pub(crate) fn mark_has(bit: u32) -> Stmt {
    eq(
        Expression::BinaryOperation(Box::new(BinaryOperation::AND(
            meta(MetaKey::Mark),
            number(bit),
        ))),
        number(bit),
    )
}

/// `meta mark set meta mark | bit`: keeps whatever other bits the host uses.
pub(crate) fn set_mark_bit(bit: u32) -> Stmt {
    Statement::Mangle(Mangle {
        key: meta(MetaKey::Mark),
        value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
            meta(MetaKey::Mark),
            number(bit),
        ]))),
    })
}

/// `dnat <family> to <addr> : <port>`.
/// `snat FAMILY to ADDR`.
pub(crate) fn snat(family: NATFamily, addr: Expr) -> Stmt {
    Statement::SNAT(Some(NAT {
        addr: Some(addr),
        family: Some(family),
        port: None,
        flags: None,
    }))
}

pub(crate) fn dnat(family: NATFamily, addr: Expr, port: Expr) -> Stmt {
    Statement::DNAT(Some(NAT {
        addr: Some(addr),
        family: Some(family),
        port: Some(port),
        flags: None,
    }))
}
