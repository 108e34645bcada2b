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

/// Builder results: boxed nodes and a boxed error keep the recursive
/// builder's stack frames small (it recurses once per nesting level).
type Res<T> = Result<T, Box<ParseError>>;

/// An expression and the depth of its tree.
type Built = (Box<Expr>, usize);

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
    let b = Builder { src };
    let expr = pairs
        .next()
        .and_then(|main| main.into_inner().find(|p| p.as_rule() == Rule::expr))
        .ok_or_else(|| b.internal())
        .and_then(|e| b.expr(e));
    match expr {
        Ok((e, _)) => Ok(*e),
        Err(e) => Err(*e),
    }
}

fn span_of(p: &Pair<'_, Rule>) -> Span {
    let s = p.as_span();
    s.start()..s.end()
}

struct Builder<'a> {
    src: &'a str,
}

impl Builder<'_> {
    #[cold]
    #[inline(never)]
    fn internal(&self) -> Box<ParseError> {
        Box::new(ParseError::new(
            0..self.src.len(),
            "internal parser error",
            "could not parse this expression",
        ))
    }

    #[inline(never)]
    fn node(&self, kind: ExprKind, span: Span, depth: usize) -> Res<Built> {
        if depth > MAX_DEPTH {
            return Err(Box::new(lex::too_deep(span)));
        }
        Ok((Box::new(Expr { kind, span }), depth))
    }

    /// `expr = and_expr (or_op and_expr)*`, left-associative.
    fn expr(&self, pair: Pair<'_, Rule>) -> Res<Built> {
        let mut acc: Option<Built> = None;
        for p in pair.into_inner() {
            if p.as_rule() == Rule::and_expr {
                let rhs = self.and_expr(p)?;
                acc = Some(match acc.take() {
                    None => rhs,
                    Some(lhs) => self.logic(true, lhs, rhs)?,
                });
            }
        }
        acc.ok_or_else(|| self.internal())
    }

    /// `and_expr = unary (and_op unary)*`, left-associative.
    fn and_expr(&self, pair: Pair<'_, Rule>) -> Res<Built> {
        let mut acc: Option<Built> = None;
        for p in pair.into_inner() {
            if p.as_rule() == Rule::unary {
                let rhs = self.unary(p)?;
                acc = Some(match acc.take() {
                    None => rhs,
                    Some(lhs) => self.logic(false, lhs, rhs)?,
                });
            }
        }
        acc.ok_or_else(|| self.internal())
    }

    #[inline(never)]
    fn logic(&self, or: bool, lhs: Built, rhs: Built) -> Res<Built> {
        let span = lhs.0.span.start..rhs.0.span.end;
        let depth = lhs.1.max(rhs.1) + 1;
        let kind = if or {
            ExprKind::Or(lhs.0, rhs.0)
        } else {
            ExprKind::And(lhs.0, rhs.0)
        };
        self.node(kind, span, depth)
    }

    /// `unary = not_op* test`
    fn unary(&self, pair: Pair<'_, Rule>) -> Res<Built> {
        let mut nots = Vec::new();
        for p in pair.into_inner() {
            match p.as_rule() {
                Rule::not_op => nots.push(p.as_span().start()),
                Rule::test => {
                    let inner = self.test(p)?;
                    return self.wrap_nots(&nots, inner);
                }
                _ => {}
            }
        }
        Err(self.internal())
    }

    #[inline(never)]
    fn wrap_nots(&self, nots: &[usize], inner: Built) -> Res<Built> {
        let (mut acc, mut depth) = inner;
        for &start in nots.iter().rev() {
            let span = start..acc.span.end;
            (acc, depth) = self.node(ExprKind::Not(acc), span, depth + 1)?;
        }
        Ok((acc, depth))
    }

    /// `test = operand (test_op operand)*`; more than one operator is an error.
    fn test(&self, pair: Pair<'_, Rule>) -> Res<Built> {
        let mut inner = pair.into_inner();
        let first = inner.next().ok_or_else(|| self.internal())?;
        let Some(op_pair) = inner.next() else {
            return self.operand(first);
        };
        let rhs_pair = inner.next().ok_or_else(|| self.internal())?;
        if let Some(second) = inner.next() {
            return Err(self.chain_error(&second));
        }
        let lhs = self.operand(first)?;
        let rhs = self.operand(rhs_pair)?;
        self.binary(&op_pair, lhs, rhs)
    }

    #[cold]
    #[inline(never)]
    fn chain_error(&self, second: &Pair<'_, Rule>) -> Box<ParseError> {
        let op = match self.test_op(second) {
            Ok(op) => op,
            Err(e) => return e,
        };
        Box::new(
            ParseError::new(
                span_of(second),
                "comparison operators cannot be chained; add parentheses",
                format!("second operator `{}` in a chain", op.as_str()),
            )
            .with_help(
                "write the comparison in parentheses, e.g. `(a == b) == c`, \
                 or combine two tests with `&&`",
            ),
        )
    }

    #[inline(never)]
    fn binary(&self, op_pair: &Pair<'_, Rule>, lhs: Built, rhs: Built) -> Res<Built> {
        let op = self.test_op(op_pair)?;
        let span = lhs.0.span.start..rhs.0.span.end;
        let depth = lhs.1.max(rhs.1) + 1;
        let kind = ExprKind::Binary {
            op,
            op_span: span_of(op_pair),
            lhs: lhs.0,
            rhs: rhs.0,
        };
        self.node(kind, span, depth)
    }

    fn test_op(&self, pair: &Pair<'_, Rule>) -> Res<BinOp> {
        let inner = pair.clone().into_inner().next();
        Ok(match inner.map(|p| p.as_rule()) {
            Some(Rule::op_eq) => BinOp::Eq,
            Some(Rule::op_ne) => BinOp::Ne,
            Some(Rule::op_le) => BinOp::Le,
            Some(Rule::op_ge) => BinOp::Ge,
            Some(Rule::op_lt) => BinOp::Lt,
            Some(Rule::op_gt) => BinOp::Gt,
            Some(Rule::op_match) => BinOp::Match,
            Some(Rule::op_not_match) => BinOp::NotMatch,
            Some(Rule::op_not_in) => BinOp::NotIn,
            Some(Rule::op_in) => BinOp::In,
            Some(Rule::op_contains) => BinOp::Contains,
            Some(Rule::op_startswith) => BinOp::StartsWith,
            Some(Rule::op_endswith) => BinOp::EndsWith,
            Some(Rule::op_glob) => BinOp::Glob,
            Some(Rule::op_under) => BinOp::Under,
            _ => return Err(self.internal()),
        })
    }

    fn operand(&self, pair: Pair<'_, Rule>) -> Res<Built> {
        let p = pair.into_inner().next().ok_or_else(|| self.internal())?;
        match p.as_rule() {
            Rule::paren => self.paren(p),
            Rule::list => self.list(p),
            Rule::call => self.call(p),
            Rule::quant => self.quant(p),
            _ => self.leaf(p),
        }
    }

    #[inline(never)]
    fn paren(&self, p: Pair<'_, Rule>) -> Res<Built> {
        let span = span_of(&p);
        let inner = p
            .into_inner()
            .find(|q| q.as_rule() == Rule::expr)
            .ok_or_else(|| self.internal())?;
        let (mut e, depth) = self.expr(inner)?;
        // A parenthesised expression's span includes its parentheses.
        e.span = span;
        Ok((e, depth))
    }

    #[inline(never)]
    fn list(&self, p: Pair<'_, Rule>) -> Res<Built> {
        let span = span_of(&p);
        let (items, depth) = self.exprs(p)?;
        self.node(ExprKind::List(items), span, depth + 1)
    }

    /// The `expr` children of `p`, unboxed, and their greatest depth.
    fn exprs(&self, p: Pair<'_, Rule>) -> Res<(Vec<Expr>, usize)> {
        let mut out = Vec::new();
        let mut depth = 0;
        for q in p.into_inner() {
            if q.as_rule() == Rule::expr {
                let (e, d) = self.expr(q)?;
                depth = depth.max(d);
                out.push(*e);
            }
        }
        Ok((out, depth))
    }

    #[inline(never)]
    fn call(&self, p: Pair<'_, Rule>) -> Res<Built> {
        let span = span_of(&p);
        let name = p
            .clone()
            .into_inner()
            .next()
            .ok_or_else(|| self.internal())?;
        let (args, depth) = self.exprs(p)?;
        let kind = ExprKind::Call {
            name: name.as_str().to_string(),
            name_span: span_of(&name),
            args,
        };
        self.node(kind, span, depth + 1)
    }

    #[inline(never)]
    fn quant(&self, p: Pair<'_, Rule>) -> Res<Built> {
        let span = span_of(&p);
        let mut kind = None;
        let mut var = None;
        let mut over = None;
        let mut body = None;
        for q in p.into_inner() {
            match q.as_rule() {
                Rule::quant_kind if q.as_str() == "any" => kind = Some(QuantKind::Any),
                Rule::quant_kind => kind = Some(QuantKind::All),
                Rule::ident => var = Some(q),
                Rule::operand => over = Some(q),
                Rule::expr => body = Some(q),
                _ => {}
            }
        }
        let (Some(kind), Some(var), Some(over), Some(body)) = (kind, var, over, body) else {
            return Err(self.internal());
        };
        let var_span = span_of(&var);
        let var = var.as_str().to_string();
        if matches!(var.as_str(), "tool" | "agent" | "action" | "args") {
            return Err(Box::new(
                ParseError::new(
                    var_span,
                    format!("`{var}` cannot be used as a quantifier variable"),
                    "reserved name",
                )
                .with_help(
                    "`tool`, `agent`, `action` and `args` always refer to the call; \
                     pick another name, e.g. `x`",
                ),
            ));
        }
        let (over, od) = self.operand(over)?;
        let (body, bd) = self.expr(body)?;
        let kind = ExprKind::Quant {
            kind,
            var,
            var_span,
            over,
            body,
        };
        self.node(kind, span, od.max(bd) + 1)
    }

    /// Literals, regexes and paths.
    #[inline(never)]
    fn leaf(&self, p: Pair<'_, Rule>) -> Res<Built> {
        let span = span_of(&p);
        let kind = match p.as_rule() {
            Rule::string => {
                let (s, _) = lex::decode_string(self.src, span.start)?;
                ExprKind::Lit(Literal::Str(s))
            }
            Rule::number => ExprKind::Lit(self.number(span.clone())?),
            Rule::regex => {
                let (pattern, flags, _) = lex::decode_regex(self.src, span.start)?;
                ExprKind::Regex { pattern, flags }
            }
            Rule::kw_true => ExprKind::Lit(Literal::Bool(true)),
            Rule::kw_false => ExprKind::Lit(Literal::Bool(false)),
            Rule::kw_null => ExprKind::Lit(Literal::Null),
            Rule::path => ExprKind::Path(self.path(p)?),
            _ => return Err(self.internal()),
        };
        self.node(kind, span, 1)
    }

    fn number(&self, span: Span) -> Res<Literal> {
        let text = &self.src[span.clone()];
        if text.contains(['.', 'e', 'E']) {
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Literal::Float(f)),
                _ => Err(Box::new(ParseError::new(
                    span,
                    "float literal out of range",
                    "too large for a 64-bit float",
                ))),
            }
        } else {
            match text.parse::<i64>() {
                Ok(i) => Ok(Literal::Int(i)),
                Err(_) => Err(Box::new(
                    ParseError::new(
                        span,
                        "integer literal out of range",
                        "does not fit in a 64-bit signed integer",
                    )
                    .with_help(format!(
                        "integers must be between {} and {}; \
                         write a float like 1e20 for larger values",
                        i64::MIN,
                        i64::MAX
                    )),
                )),
            }
        }
    }

    fn path(&self, p: Pair<'_, Rule>) -> Res<Path> {
        let mut inner = p.into_inner();
        let root_pair = inner.next().ok_or_else(|| self.internal())?;
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
                .find(|q| matches!(q.as_rule(), Rule::key | Rule::string | Rule::index))
                .ok_or_else(|| self.internal())?;
            segments.push(match value.as_rule() {
                Rule::key => Segment::Key(value.as_str().to_string(), seg_span),
                Rule::string => {
                    let (s, _) = lex::decode_string(self.src, span_of(&value).start)?;
                    Segment::Key(s, seg_span)
                }
                _ => match value.as_str().parse::<u64>() {
                    Ok(i) => Segment::Index(i, seg_span),
                    Err(_) => {
                        return Err(Box::new(ParseError::new(
                            span_of(&value),
                            "index out of range",
                            "does not fit in a 64-bit unsigned integer",
                        )))
                    }
                },
            });
        }
        Ok(Path {
            root,
            root_span,
            segments,
        })
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
        | Rule::kw_not
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
            if message.contains("stack limit") {
                return ParseError::new(
                    0..src.len(),
                    "expression nested too deeply",
                    "not enough stack space to parse this nesting",
                )
                .with_help("simplify the expression, or split it over several rules");
            }
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
