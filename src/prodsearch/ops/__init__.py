"""Operations: status and verify — one command for each question an operator asks."""
