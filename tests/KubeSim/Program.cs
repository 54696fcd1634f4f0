namespace KtConnect.KubeSim;

/// <summary>`KtConnect.KubeSim start|stop`: the simulated cluster as its own process.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        // `echo ...`: the process behind application images on the simulated node (Images/EchoServer.cs).
        if (args is ["echo", ..]) return Images.EchoServer.RunMain(args[1..]);
        // `node ...`: a node without a control plane, for manual use and crash tests (Node/NodeHost.cs).
        if (args is ["node", ..]) return Node.NodeHost.RunMain(args[1..]);
        Console.Error.WriteLine("usage: KtConnect.KubeSim start|stop --state <dir>");
        return args.Length == 0 ? 2 : 2;
    }
}
