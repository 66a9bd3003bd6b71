"""The model: the encoder with its task embedding, pooling and heads (`encoder`), and DeBERTa's
attention backends (`attention`)."""
