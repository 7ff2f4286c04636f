"""EmotiVoice at run time: its text front-end, the WordPiece tokenizer of its style BERT, and the synthesizer."""
