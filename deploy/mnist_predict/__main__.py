from mnist_predict.cli import main

if __name__ == "__main__":  # worker processes may import this module; only the parent runs the CLI
    main()
