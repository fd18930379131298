from swesrl.cli import main

main()
