"""Edge deployment: TFLite export (float32 and int8) measured on the interpreter.

Runs TensorFlow: call it from the CLI or a worker, never from the web server.
"""
