"""One job from files to files: decode the inputs, run the engine, publish the result, its sidecar and sheet."""
