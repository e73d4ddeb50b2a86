from kgents_pipeline.cli import main

main()
