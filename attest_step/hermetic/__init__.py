"""Network isolation of build steps and the evidence of it."""
