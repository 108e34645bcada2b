//! Building the AST from pest pairs, and turning pest errors into readable
//! [`ParseError`]s.

use std::num::NonZeroUsize;
use std::ops::Range;

use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;
use pest::Parser as _;

use crate::ast::{BinOp, Expr, ExprKind, Literal, Path, PathRoot, QuantKind, Segment, Span};
use crate::error::ParseError;
use crate::lex;

/// Maximum depth of the resulting AST. Deeper trees (e.g. hundreds of `!`
/// or a very long `&&` chain) are rejected so that recursive consumers of
/// the tree (drop, printing, the compiler) cannot overflow the stack.
pub const MAX_DEPTH: usize = 256;

/// The pest call budget for one parse (a process-wide pest setting).
pub const CALL_LIMIT: usize = 5_000_000;

#[derive(pest_derive::Parser)]
#[grammar = "expr.pest"]
struct ExprParser;

type Res<T> = Result<T, ParseError>;

/// Parses one condition expression.
///
/// Spans in the result are byte ranges into `src`. Never panics.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    if src.trim().is_empty() {
        return Err(ParseError::new(
            0..src.len(),
            "empty expression",
            "expected a condition here",
        )
        .with_help("write a condition such as args.path under \"/srv\", or remove `when:`"));
    }
    lex::check(src)?;
    pest::set_call_limit(NonZeroUsize::new(CALL_LIMIT));
    let mut pairs = ExprParser::parse(Rule::main, src).map_err(|e| convert_error(src, e))?;
    let main = pairs.next().ok_or_else(|| internal(src))?;
    let expr = main
        .into_inner()
        .find(|p| p.as_rule() == Rule::expr)
        .ok_or_else(|| internal(src))?;
    let b = Builder { src };
    Ok(b.expr(expr)?.0)
}

fn internal(src: &str) -> ParseError {
    ParseError::new(
        0..src.len(),
        "internal parser error",
        "could not parse this expression",
    )
}

fn span_of(p: &Pair<'_, Rule>) -> Span {
    let s = p.as_span();
    s.start()..s.end()
}

struct Builder<'a> {
    src: &'a str,
}

/// An expression and the depth of its tree.
type Built = (Expr, usize);

impl Builder<'_> {
    fn node(&self, kind: ExprKind, span: Span, depth: usize) -> Res<Built> {
        if depth > MAX_DEPTH {
            return Err(lex::too_deep(span));
        }
        Ok((Expr { kind, span }, depth))
    }

    /// `expr = and_expr (or_op and_expr)*`, left-associative.
    fn expr(&self, pair: Pair<'_, Rule>) -> Res<Built> {
        let mut inner = pair.into_inner().filter(|p| p.as_rule() == Rule::and_expr);
        let first = inner.next().ok_or_else(|| internal(self.src))?;
        let (mut acc, mut depth) = self.and_expr(first)?;
        for next in inner {
            let (rhs, d) = self.and_expr(next)?;
            let span = acc.span.start..rhs.span.end;
            depth = depth.max(d) + 1;
            (acc, depth) = self.node(ExprKind::Or(Box::new(acc), Box::new(rhs)), span, depth)?;
        }
        Ok((acc, depth))
    }

    /// `and_expr = unary (and_op unary)*`, left-associative.
    fn and_expr(&self, pair: Pair<'_, Rule>) -> Res<Built> {
        let mut inner = pair.into_inner().filter(|p| p.as_rule() == Rule::unary);
        let first = inner.next().ok_or_else(|| internal(self.src))?;
        let (mut acc, mut depth) = self.unary(first)?;
        for next in inner {
            let (rhs, d) = self.unary(next)?;
            let span = acc.span.start..rhs.span.end;
            depth = depth.max(d) + 1;
            (acc, depth) = self.node(ExprKind::And(Box::new(acc), Box::new(rhs)), span, depth)?;
        }
        Ok((acc, depth))
    }

    /// `unary = not_op* test`
    fn unary(&self, pair: Pair<'_, Rule>) -> Res<Built> {
        let mut nots = Vec::new();
        let mut test = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::not_op => nots.push(span_of(&p).start),
                Rule::test => test = Some(p),
                _ => {}
            }
        }
        let test = test.ok_or_else(|| internal(self.src))?;
        let (mut acc, mut depth) = self.test(test)?;
        for start in nots.into_iter().rev() {
            let span = start..acc.span.end;
            (acc, depth) = self.node(ExprKind::Not(Box::new(acc)), span, depth + 1)?;
        }
        Ok((acc, depth))
    }

    /// `test = operand (test_op operand)*`; more than one operator is an error.
    fn test(&self, pair: Pair<'_, Rule>) -> Res<Built> {
        let mut inner = pair.into_inner();
        let first = inner.next().ok_or_else(|| internal(self.src))?;
        let (lhs, ld) = self.operand(first)?;
        let Some(op_pair) = inner.next() else {
            return Ok((lhs, ld));
        };
        let rhs_pair = inner.next().ok_or_else(|| internal(self.src))?;
        if let Some(second) = inner.next() {
            let op2 = self.test_op(&second)?;
            return Err(ParseError::new(
                span_of(&second),
                "comparison operators cannot be chained; add parentheses",
                format!("second operator `{}` in a chain", op2.as_str()),
            )
            .with_help(
                "write the comparison in parentheses, e.g. `(a == b) == c`, \
                 or combine two tests with `&&`",
            ));
        }
        let op = self.test_op(&op_pair)?;
        let op_span = span_of(&op_pair);
        let (rhs, rd) = self.operand(rhs_pair)?;
        let span = lhs.span.start..rhs.span.end;
        self.node(
            ExprKind::Binary {
                op,
                op_span,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            },
            span,
            ld.max(rd) + 1,
        )
    }

    fn test_op(&self, pair: &Pair<'_, Rule>) -> Res<BinOp> {
        let inner = pair
            .clone()
            .into_inner()
            .next()
            .ok_or_else(|| internal(self.src))?;
        Ok(match inner.as_rule() {
            Rule::op_eq => BinOp::Eq,
            Rule::op_ne => BinOp::Ne,
            Rule::op_le => BinOp::Le,
            Rule::op_ge => BinOp::Ge,
            Rule::op_lt => BinOp::Lt,
            Rule::op_gt => BinOp::Gt,
            Rule::op_match => BinOp::Match,
            Rule::op_not_match => BinOp::NotMatch,
            Rule::op_not_in => BinOp::NotIn,
            Rule::op_in => BinOp::In,
            Rule::op_contains => BinOp::Contains,
            Rule::op_startswith => BinOp::StartsWith,
            Rule::op_endswith => BinOp::EndsWith,
            Rule::op_glob => BinOp::Glob,
            Rule::op_under => BinOp::Under,
            _ => return Err(internal(self.src)),
        })
    }

    fn operand(&self, pair: Pair<'_, Rule>) -> Res<Built> {
        let p = pair.into_inner().next().ok_or_else(|| internal(self.src))?;
        let span = span_of(&p);
        match p.as_rule() {
            Rule::string => {
                let (s, _) = lex::decode_string(self.src, span.start)?;
                self.node(ExprKind::Lit(Literal::Str(s)), span, 1)
            }
            Rule::number => self.number(span),
            Rule::regex => {
                let (pattern, flags, _) = lex::decode_regex(self.src, span.start)?;
                self.node(ExprKind::Regex { pattern, flags }, span, 1)
            }
            Rule::kw_true => self.node(ExprKind::Lit(Literal::Bool(true)), span, 1),
            Rule::kw_false => self.node(ExprKind::Lit(Literal::Bool(false)), span, 1),
            Rule::kw_null => self.node(ExprKind::Lit(Literal::Null), span, 1),
            Rule::list => {
                let (items, depth) = self.exprs(p.into_inner())?;
                self.node(ExprKind::List(items), span, depth + 1)
            }
            Rule::paren => {
                let inner = p
                    .into_inner()
                    .find(|q| q.as_rule() == Rule::expr)
                    .ok_or_else(|| internal(self.src))?;
                let (mut e, depth) = self.expr(inner)?;
                // A parenthesised expression's span includes its parentheses.
                e.span = span;
                Ok((e, depth))
            }
            Rule::call => self.call(p, span),
            Rule::quant => self.quant(p, span),
            Rule::path => self.path(p, span),
            _ => Err(internal(self.src)),
        }
    }

    fn exprs<'i>(&self, pairs: impl Iterator<Item = Pair<'i, Rule>>) -> Res<(Vec<Expr>, usize)> {
        let mut out = Vec::new();
        let mut depth = 0;
        for p in pairs.filter(|p| p.as_rule() == Rule::expr) {
            let (e, d) = self.expr(p)?;
            depth = depth.max(d);
            out.push(e);
        }
        Ok((out, depth))
    }

    fn number(&self, span: Span) -> Res<Built> {
        let text = &self.src[span.clone()];
        if text.contains(['.', 'e', 'E']) {
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => self.node(ExprKind::Lit(Literal::Float(f)), span, 1),
                _ => Err(ParseError::new(
                    span,
                    "float literal out of range",
                    "too large for a 64-bit float",
                )),
            }
        } else {
            match text.parse::<i64>() {
                Ok(i) => self.node(ExprKind::Lit(Literal::Int(i)), span, 1),
                Err(_) => Err(ParseError::new(
                    span,
                    "integer literal out of range",
                    "does not fit in a 64-bit signed integer",
                )
                .with_help(format!(
                    "integers must be between {} and {}; write a float like 1e20 for larger values",
                    i64::MIN,
                    i64::MAX
                ))),
            }
        }
    }

    fn call(&self, pair: Pair<'_, Rule>, span: Span) -> Res<Built> {
        let mut inner = pair.into_inner();
        let name = inner.next().ok_or_else(|| internal(self.src))?;
        let (args, depth) = self.exprs(inner)?;
        self.node(
            ExprKind::Call {
                name: name.as_str().to_string(),
                name_span: span_of(&name),
                args,
            },
            span,
            depth + 1,
        )
    }

    fn quant(&self, pair: Pair<'_, Rule>, span: Span) -> Res<Built> {
        let mut kind = None;
        let mut var = None;
        let mut over = None;
        let mut body = None;
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::quant_kind => {
                    kind = Some(if p.as_str() == "any" {
                        QuantKind::Any
                    } else {
                        QuantKind::All
                    })
                }
                Rule::ident => var = Some(p),
                Rule::operand => over = Some(p),
                Rule::expr => body = Some(p),
                _ => {}
            }
        }
        let (Some(kind), Some(var), Some(over), Some(body)) = (kind, var, over, body) else {
            return Err(internal(self.src));
        };
        let var_span = span_of(&var);
        let var = var.as_str().to_string();
        if matches!(var.as_str(), "tool" | "agent" | "action" | "args") {
            return Err(ParseError::new(
                var_span,
                format!("`{var}` cannot be used as a quantifier variable"),
                "reserved name",
            )
            .with_help("`tool`, `agent`, `action` and `args` always refer to the call; pick another name, e.g. `x`"));
        }
        let (over, od) = self.operand(over)?;
        let (body, bd) = self.expr(body)?;
        self.node(
            ExprKind::Quant {
                kind,
                var,
                var_span,
                over: Box::new(over),
                body: Box::new(body),
            },
            span,
            od.max(bd) + 1,
        )
    }

    fn path(&self, pair: Pair<'_, Rule>, span: Span) -> Res<Built> {
        let mut inner = pair.into_inner();
        let root_pair = inner.next().ok_or_else(|| internal(self.src))?;
        let root_span = span_of(&root_pair);
        let root = match root_pair.as_str() {
            "tool" => PathRoot::Tool,
            "agent" => PathRoot::Agent,
            "action" => PathRoot::Action,
            "args" => PathRoot::Args,
            other => PathRoot::Var(other.to_string()),
        };
        let mut segments = Vec::new();
        for seg in inner {
            let seg_span = span_of(&seg);
            let value = seg
                .into_inner()
                .find(|p| matches!(p.as_rule(), Rule::key | Rule::string | Rule::index))
                .ok_or_else(|| internal(self.src))?;
            segments.push(match value.as_rule() {
                Rule::key => Segment::Key(value.as_str().to_string(), seg_span),
                Rule::string => {
                    let (s, _) = lex::decode_string(self.src, span_of(&value).start)?;
                    Segment::Key(s, seg_span)
                }
                _ => match value.as_str().parse::<u64>() {
                    Ok(i) => Segment::Index(i, seg_span),
                    Err(_) => {
                        return Err(ParseError::new(
                            span_of(&value),
                            "index out of range",
                            "does not fit in a 64-bit unsigned integer",
                        ))
                    }
                },
            });
        }
        self.node(
            ExprKind::Path(Path {
                root,
                root_span,
                segments,
            }),
            span,
            1,
        )
    }
}

// ---------------------------------------------------------------------------
// Error conversion

/// What a rule is called in an error message; `None` hides the rule.
fn human(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::main
        | Rule::expr
        | Rule::and_expr
        | Rule::unary
        | Rule::test
        | Rule::operand
        | Rule::not_op
        | Rule::quant
        | Rule::quant_kind
        | Rule::call
        | Rule::list
        | Rule::paren
        | Rule::kw_true
        | Rule::kw_false
        | Rule::kw_null => "an operand",
        Rule::string => "a string",
        Rule::number => "a number",
        Rule::regex => "a regex literal like /pattern/",
        Rule::path | Rule::root => "a path like args.x",
        Rule::ident => "a variable name",
        Rule::key => "a key name",
        Rule::index => "an index",
        Rule::kw_in => "`in`",
        Rule::colon => "`:`",
        Rule::comma => "`,`",
        Rule::rparen => "`)`",
        Rule::rbracket => "`]`",
        Rule::EOI => "end of input",
        Rule::test_op
        | Rule::or_op
        | Rule::and_op
        | Rule::op_eq
        | Rule::op_ne
        | Rule::op_le
        | Rule::op_ge
        | Rule::op_lt
        | Rule::op_gt
        | Rule::op_match
        | Rule::op_not_match
        | Rule::op_not_in
        | Rule::op_in
        | Rule::op_contains
        | Rule::op_startswith
        | Rule::op_endswith
        | Rule::op_glob
        | Rule::op_under
        | Rule::kw_and
        | Rule::kw_or
        | Rule::kw_not
        | Rule::kw_contains
        | Rule::kw_startswith
        | Rule::kw_endswith
        | Rule::kw_glob
        | Rule::kw_under => "an operator",
        Rule::dot_segment
        | Rule::index_segment
        | Rule::keyword
        | Rule::ident_char
        | Rule::WHITESPACE => return None,
    })
}

/// Order in which expected items are listed.
const ORDER: &[&str] = &[
    "an operand",
    "a variable name",
    "a key name",
    "a string",
    "an index",
    "a number",
    "a regex literal like /pattern/",
    "a path like args.x",
    "`in`",
    "`:`",
    "`,`",
    "`)`",
    "`]`",
    "an operator",
    "end of input",
];

fn convert_error(src: &str, err: pest::error::Error<Rule>) -> ParseError {
    let pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    }
    .min(src.len());
    let positives = match err.variant {
        ErrorVariant::ParsingError { positives, .. } => positives,
        ErrorVariant::CustomError { message } => {
            if message.contains("limit") {
                return ParseError::new(
                    0..src.len(),
                    "expression is too complex to parse",
                    "this expression exceeds the parser's limits",
                )
                .with_help("simplify the expression, or split it over several rules");
            }
            return ParseError::new(pos..pos, message, "here");
        }
    };
    let mut names: Vec<&'static str> = positives.into_iter().filter_map(human).collect();
    names.sort_by_key(|n| ORDER.iter().position(|o| o == n));
    names.dedup();

    let (tspan, found) = found_token(src, pos);
    let label = format!("unexpected {found}");
    let mut error = if names == ["an operand"] {
        match operator_before(src, pos) {
            Some(op) => ParseError::new(tspan, format!("expected an operand after '{op}'"), label),
            None => ParseError::new(tspan, format!("expected an operand, found {found}"), label),
        }
    } else {
        let expected = match names.as_slice() {
            [] => "something else".to_string(),
            [one] => (*one).to_string(),
            [a, b] => format!("{a} or {b}"),
            many => format!("one of: {}", many.join(", ")),
        };
        ParseError::new(tspan, format!("expected {expected}, found {found}"), label)
    };
    error.help = help_for(src, pos);
    error
}

/// Help for common mistakes at `pos`.
fn help_for(src: &str, pos: usize) -> Option<String> {
    let rest = &src[pos..];
    let help = if rest.starts_with("&&") || rest.starts_with("||") {
        return None;
    } else if rest.starts_with('=') && !rest.starts_with("==") && !rest.starts_with("=~") {
        "use `==` to compare values"
    } else if rest.starts_with('&') {
        "use `&&` (or `and`) to require both conditions"
    } else if rest.starts_with('|') {
        "use `||` (or `or`) for either condition"
    } else if rest.starts_with('-') {
        "there is no minus operator; a negative number is written without a space, e.g. -3"
    } else if starts_with_keyword(rest) {
        "keywords cannot be used as names; for an argument named like a keyword write args.in or args[\"in\"]"
    } else {
        return None;
    };
    Some(help.to_string())
}

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "contains",
    "startswith",
    "endswith",
    "glob",
    "under",
    "true",
    "false",
    "null",
];

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn word_at(rest: &str) -> &str {
    let end = rest
        .char_indices()
        .find(|&(_, c)| !is_ident_char(c))
        .map_or(rest.len(), |(i, _)| i);
    &rest[..end]
}

fn starts_with_keyword(rest: &str) -> bool {
    KEYWORDS.contains(&word_at(rest))
}

/// The token at `pos` (its span) and a description for "found ...".
fn found_token(src: &str, pos: usize) -> (Range<usize>, String) {
    let rest = &src[pos..];
    let Some(c) = rest.chars().next() else {
        return (pos..pos, "end of input".to_string());
    };
    let len = if c == '"' || c == '\'' {
        match lex::decode_string(src, pos) {
            Ok((_, end)) => end - pos,
            Err(_) => rest.len(),
        }
    } else if c == '/' {
        match lex::decode_regex(src, pos) {
            Ok((_, _, end)) => end - pos,
            Err(_) => c.len_utf8(),
        }
    } else if is_ident_char(c) || (c == '-' && rest[1..].starts_with(|d: char| d.is_ascii_digit()))
    {
        1 + rest[1..]
            .char_indices()
            .find(|&(_, d)| !(is_ident_char(d) || d == '.'))
            .map_or(rest.len() - 1, |(i, _)| i)
    } else if ["&&", "||", "==", "!=", "<=", ">=", "=~", "!~"]
        .iter()
        .any(|op| rest.starts_with(op))
    {
        2
    } else {
        c.len_utf8()
    };
    let text = &rest[..len];
    let desc = if c == '"' || c == '\'' {
        if text.chars().count() <= 30 {
            format!("the string {text}")
        } else {
            "a string".to_string()
        }
    } else if text.chars().count() <= 30 {
        format!("`{}`", text.escape_debug())
    } else {
        format!(
            "`{}…`",
            text.chars().take(30).collect::<String>().escape_debug()
        )
    };
    (pos..pos + len, desc)
}

/// The operator token that ends just before `pos` (ignoring whitespace).
fn operator_before(src: &str, pos: usize) -> Option<&'static str> {
    let before = src[..pos].trim_end();
    for op in [
        "&&", "||", "==", "!=", "<=", ">=", "=~", "!~", "<", ">", "!",
    ] {
        if before.ends_with(op) {
            return Some(op);
        }
    }
    let word_start = before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_ident_char(c))
        .last()
        .map(|(i, _)| i)?;
    let word = &before[word_start..];
    let prev = before[..word_start].chars().next_back();
    if prev == Some('.') {
        return None;
    }
    let op = match word {
        "and" => "and",
        "or" => "or",
        "not" => "not",
        "contains" => "contains",
        "startswith" => "startswith",
        "endswith" => "endswith",
        "glob" => "glob",
        "under" => "under",
        "in" => {
            let head = before[..word_start].trim_end();
            let w = word_at_end(head);
            if w == "not" && !head[..head.len() - 3].ends_with('.') {
                "not in"
            } else {
                "in"
            }
        }
        _ => return None,
    };
    Some(op)
}

fn word_at_end(s: &str) -> &str {
    let start = s
        .char_indices()
        .rev()
        .take_while(|&(_, c)| is_ident_char(c))
        .last()
        .map_or(s.len(), |(i, _)| i);
    &s[start..]
}
