"""micro-llm, the computer's side: quantizer, numpy reference, simulator and command line."""
