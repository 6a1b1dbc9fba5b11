from speakerlink_server.main import main

main()
