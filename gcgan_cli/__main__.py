from gcgan_cli.entry import main

main()
