from rqs.cli.main import main

main()
