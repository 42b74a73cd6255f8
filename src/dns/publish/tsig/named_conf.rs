//! A minimal reader of named.conf syntax, for BIND key files (`tsig-keygen` output, or a
//! `named.conf` fragment with other statements): statements `WORD… [{ … }] ;`, with
//! quoted strings and the three comment styles. What a statement means is
//! `TsigKey::parse_bind`'s business; this only finds the statements.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub quoted: bool,
    pub line: usize,
}

#[derive(Debug)]
pub struct Statement {
    pub line: usize,
    pub head: Vec<Token>,
    pub block: Option<Vec<Statement>>,
}

impl Statement {
    /// The first word, unless it is quoted.
    pub fn keyword(&self) -> Option<&str> {
        self.head
            .first()
            .filter(|t| !t.quoted)
            .map(|t| t.text.as_str())
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Tok {
    Word(Token),
    Open(usize),
    Close(usize),
    Semi(usize),
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = text.chars().collect();
    let (mut i, mut line) = (0, 1);
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let start = line;
                i += 2;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("line {start}: unterminated /* comment")),
                        Some('*') if chars.get(i + 1) == Some(&'/') => {
                            i += 2;
                            break;
                        }
                        Some('\n') => {
                            line += 1;
                            i += 1;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            '{' => {
                out.push(Tok::Open(line));
                i += 1;
            }
            '}' => {
                out.push(Tok::Close(line));
                i += 1;
            }
            ';' => {
                out.push(Tok::Semi(line));
                i += 1;
            }
            '"' => {
                let start = line;
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(format!("line {start}: unterminated quoted string"));
                        }
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') if i + 1 < chars.len() => {
                            value.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            value.push(ch);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Word(Token {
                    text: value,
                    quoted: true,
                    line: start,
                }));
            }
            _ => {
                let mut value = String::new();
                while let Some(&ch) = chars.get(i) {
                    let comment =
                        (ch == '/' && matches!(chars.get(i + 1), Some('/' | '*'))) || ch == '#';
                    if ch.is_whitespace() || "{};\"".contains(ch) || comment {
                        break;
                    }
                    value.push(ch);
                    i += 1;
                }
                out.push(Tok::Word(Token {
                    text: value,
                    quoted: false,
                    line,
                }));
            }
        }
    }
    Ok(out)
}

pub fn parse(text: &str) -> Result<Vec<Statement>, String> {
    let tokens = tokenize(text)?;
    let mut pos = 0;
    let statements = parse_block(&tokens, &mut pos, None)?;
    Ok(statements)
}

/// Statements up to the `}` closing a block opened on `opened` (or the end).
fn parse_block(
    tokens: &[Tok],
    pos: &mut usize,
    opened: Option<usize>,
) -> Result<Vec<Statement>, String> {
    let mut statements = Vec::new();
    loop {
        let mut head: Vec<Token> = Vec::new();
        let mut block = None;
        loop {
            match tokens.get(*pos) {
                None => {
                    return match (opened, head.first()) {
                        (Some(line), _) => Err(format!("line {line}: `{{` is never closed")),
                        (None, Some(first)) => Err(format!(
                            "line {}: statement `{}` does not end with `;`",
                            first.line, first.text
                        )),
                        (None, None) => Ok(statements),
                    };
                }
                Some(Tok::Word(word)) => {
                    if block.is_some() {
                        return Err(format!(
                            "line {}: expected `;` before `{}`",
                            word.line, word.text
                        ));
                    }
                    head.push(word.clone());
                    *pos += 1;
                }
                Some(Tok::Open(line)) => {
                    if head.is_empty() || block.is_some() {
                        return Err(format!("line {line}: unexpected `{{`"));
                    }
                    *pos += 1;
                    block = Some(parse_block(tokens, pos, Some(*line))?);
                }
                Some(Tok::Close(line)) => {
                    if !head.is_empty() {
                        return Err(format!("line {line}: expected `;` before `}}`"));
                    }
                    return match opened {
                        Some(_) => {
                            *pos += 1;
                            Ok(statements)
                        }
                        None => Err(format!("line {line}: unexpected `}}`")),
                    };
                }
                Some(Tok::Semi(line)) => {
                    *pos += 1;
                    if head.is_empty() {
                        if block.is_some() {
                            unreachable!("a block always follows a head");
                        }
                        // A stray `;` is harmless.
                        let _ = line;
                        continue;
                    }
                    let line = head[0].line;
                    statements.push(Statement { line, head, block });
                    break;
                }
            }
        }
    }
}
