//! The CPU world's character tokenizer: 23 symbols.

use zoo_core::policy::Tokenizer;
use zoo_core::{Error, Result};

/// The characters after the three special tokens, in id order.
const CHARS: &str = "0123456789+=c;>[]hs:";

/// One token per character of `0-9 + = c ; > [ ] h s :`, plus padding (0),
/// beginning-of-sequence (1) and end-of-sequence (2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CharTokenizer;

impl CharTokenizer {
    /// Padding.
    pub const PAD: u32 = 0;
    /// Beginning of sequence.
    pub const BOS: u32 = 1;
    /// End of sequence.
    pub const EOS: u32 = 2;
    /// Vocabulary size.
    pub const VOCAB: usize = 3 + CHARS.len();
}

impl Tokenizer for CharTokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .map(|ch| {
                CHARS
                    .find(ch)
                    .map(|i| i as u32 + 3)
                    .ok_or_else(|| Error::Tokenize {
                        text: text.to_string(),
                        ch,
                    })
            })
            .collect()
    }

    fn decode(&self, tokens: &[u32]) -> String {
        tokens
            .iter()
            .filter(|&&t| t >= 3)
            .filter_map(|&t| CHARS.as_bytes().get(t as usize - 3).map(|&b| b as char))
            .collect()
    }

    fn bos(&self) -> u32 {
        Self::BOS
    }
    fn eos(&self) -> u32 {
        Self::EOS
    }
    fn pad(&self) -> u32 {
        Self::PAD
    }
    fn vocab_size(&self) -> usize {
        Self::VOCAB
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_has_23_symbols() {
        assert_eq!(CharTokenizer::VOCAB, 23);
    }

    #[test]
    fn encode_decode_round_trips() {
        let text = "347+589=[h:936]7+9=16c1;=>936";
        let ids = CharTokenizer.encode(text).unwrap();
        assert_eq!(CharTokenizer.decode(&ids), text);
    }

    #[test]
    fn unknown_characters_are_an_error_naming_them() {
        let err = CharTokenizer.encode("1+x").unwrap_err().to_string();
        assert!(err.contains("'x'"), "{err}");
    }
}
