"""Answer programs (issue 23): what running a question's program needs on the device, torch-free.

tasks.py holds each benchmark task's answer rule (what the oracle and the program-aided model
compute from the sources heard), sentences.py the answer a person hears, programs.py the
program text a language model writes ("sector a=dog claim=back-left") and its runner. How a
question is asked (phrasings, sampling, distractors) stays in training/qa.
"""
