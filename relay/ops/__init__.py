"""Operations: readiness, metrics, logs, log throttling and the state-directory lock."""
