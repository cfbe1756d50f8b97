"""flowcraft_bullmq: run flowcraft blueprints across worker processes on BullMQ and Redis."""

__all__: list[str] = []
