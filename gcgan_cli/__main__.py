from gcgan_cli.cli import main

main()
